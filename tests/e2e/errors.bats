#!/usr/bin/env bats
# The writing rules of design.md section 1 and their errors: O_APPEND is
# required (EPERM otherwise), nothing truncates (EPERM), the follow view
# and .topicfs are read-only, every write lands at the true end, and a
# record longer than max.record.bytes is EFBIG with nothing of it stored.
#
# The EFBIG rule for lines cut into several pieces (fsops.c, WRITES):
#  * A write() that carries a too-long record fails with EFBIG and stores
#    none of its records.
#  * If the start of that record had been accepted before (a held partial
#    line, from an earlier write() or from the first piece of this one when
#    the kernel split it at max_write and returned a short count), the rest
#    of that line is refused as well: later writes fail with EFBIG up to
#    and including the one carrying the line's '\n'.
#  * A write() that re-sends the refused bytes (stdio, Python and shippers
#    retry after a short count or an error) fails with EFBIG once more, so
#    the program surely hears of it; a later re-send has them dropped and
#    the rest stored.  No fragment and no duplicate is ever stored.

load helper
load contract

setup() {
	case "$BATS_TEST_DESCRIPTION" in
	*max.record.bytes=1000*) setup_node -o max.record.bytes=1000 ;;
	*) setup_node ;;
	esac
	mkdir "$MNT/t"
}

teardown() {
	teardown_node
}

@test "opening a partition for writing without O_APPEND is EPERM" {
	printf 'one\ntwo\n' >>"$MNT/t/0"
	before=$(md5sum <"$MNT/t/0")
	run sh -c "echo x >'$MNT/t/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run dd if=/dev/zero of="$MNT/t/0" bs=1 count=1 conv=notrunc status=none
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	pyrun '
p = mnt + "/t/0"
for mode in ["w", "r+", "w+", "wb", "r+b"]:
    expect("EPERM", open, p, mode)
expect("EEXIST", open, p, "x")
expect("EPERM", os.open, p, os.O_WRONLY)
expect("EPERM", os.open, p, os.O_RDWR)
expect("EPERM", os.open, p, os.O_WRONLY | os.O_CREAT)
expect("EPERM", os.open, p, os.O_RDWR | os.O_CREAT)
'
	[ "$(md5sum <"$MNT/t/0")" = "$before" ]
	# The append modes work: >>, tee -a, Python "a" and "a+".
	echo three >>"$MNT/t/0"
	echo four | tee -a "$MNT/t/0" >/dev/null
	pyrun '
with open(mnt + "/t/0", "a") as f:
    f.write("five\n")
with open(mnt + "/t/0", "a+") as f:
    f.write("six\n")
    f.seek(0)
    assert f.readline() == "one\n"
'
	[ "$(cat "$MNT/t/0" | tr '\n' ' ')" = "one two three four five six " ]
}

@test "truncate and O_TRUNC are EPERM and change nothing" {
	printf 'one\ntwo\n' >>"$MNT/t/0"
	run truncate -s 0 "$MNT/t/0"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run truncate -s 100 "$MNT/t/0"
	[ "$status" -ne 0 ]
	run sh -c ": >'$MNT/t/0'"
	[ "$status" -ne 0 ]
	pyrun '
p = mnt + "/t/0"
expect("EPERM", os.truncate, p, 0)
expect("EPERM", os.truncate, p, 8)
expect("EPERM", os.open, p, os.O_WRONLY | os.O_APPEND | os.O_TRUNC)
expect("EPERM", os.open, p, os.O_RDONLY | os.O_TRUNC)
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
expect("EPERM", os.ftruncate, fd, 0)
expect("EPERM", os.ftruncate, fd, 4)
os.close(fd)
'
	# fallocate is not supported; it must not change the file either.
	run fallocate -l 1M "$MNT/t/0"
	[ "$status" -ne 0 ]
	[ "$(cat "$MNT/t/0" | tr '\n' ' ')" = "one two " ]
	[ "$(fsize "$MNT/t/0")" -eq 8 ]
}

@test "the follow view and .topicfs files refuse writes" {
	echo one >>"$MNT/t/0"
	pyrun '
A = os.O_WRONLY | os.O_APPEND
expect("EPERM", os.open, mnt + "/t/.follow/0", A)
expect("EPERM", os.open, mnt + "/t/.follow/0", os.O_RDWR | os.O_APPEND)
expect("EPERM", os.open, mnt + "/.topicfs/status", A)
expect("EPERM", os.open, mnt + "/.topicfs/metrics", A)
expect("EPERM", os.truncate, mnt + "/t/.follow/0", 0)
expect("EISDIR", os.open, mnt + "/t", os.O_RDONLY | os.O_DIRECTORY | os.O_WRONLY)
'
	run sh -c "echo x >>'$MNT/t/.follow/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	[ "$(cat "$MNT/t/0")" = one ]
}

@test "every write lands at the true end, whatever the file position" {
	pyrun '
p = mnt + "/t/0"
a = os.open(p, os.O_WRONLY | os.O_APPEND)
b = os.open(p, os.O_WRONLY | os.O_APPEND)
os.write(a, b"a1\n")
os.write(b, b"b1-" + b"x" * 5000 + b"\n")
os.write(a, b"a2\n")
# pwrite on an O_APPEND file appends too (Linux ignores the offset).
os.pwrite(b, b"b2\n", 0)
os.lseek(a, 0, os.SEEK_SET)
os.write(a, b"a3\n")
os.close(a)
os.close(b)
lines = content(p).split(b"\n")
assert [l[:3] for l in lines] == [b"a1\n"[:2], b"b1-", b"a2", b"b2", b"a3", b""], lines
assert os.stat(p).st_size == 3 + 5004 + 3 + 3 + 3
'
	[ "$(xget records "$MNT/t/0")" = 5 ]
}

@test "a record longer than max.record.bytes=1000 is EFBIG and nothing of it is stored" {
	pyrun '
p = mnt + "/t/0"
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
expect("EFBIG", os.write, fd, b"x" * 1000 + b"\n")
assert os.write(fd, b"y" * 999 + b"\n") == 1000   # exactly the limit
# A write is all or nothing: the good records around it go too.
expect("EFBIG", os.write, fd, b"ok1\n" + b"z" * 2000 + b"\n" + b"ok2\n")
expect("EFBIG", os.write, fd, b"w" * 1500)         # no newline yet
assert os.write(fd, b"next\n") == 5
os.close(fd)
assert content(p) == b"y" * 999 + b"\n" + b"next\n", content(p)[-40:]
'
	[ "$(xget records "$MNT/t/0")" = 2 ]
	grep -q 'record longer than max.record.bytes' "$LOG"
	# The shell sees the error too, and the next command works.
	run bash -c "printf '%1200s\n' x >>'$MNT/t/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"File too large"* ]]
	echo after >>"$MNT/t/0"
	[ "$(tail -n 1 "$MNT/t/0")" = after ]
	[ "$(xget records "$MNT/t/0")" = 3 ]
}

@test "after EFBIG on a held partial line the rest of that line is refused (max.record.bytes=1000)" {
	pyrun '
p = mnt + "/t/0"
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
assert os.write(fd, b"a" * 600) == 600          # held, accepted
expect("EFBIG", os.write, fd, b"b" * 600)       # the line is now too long
expect("EFBIG", os.write, fd, b"c" * 100)       # the rest of it...
expect("EFBIG", os.write, fd, b"d" * 50 + b"\nlost\n")  # ...to its newline
assert os.write(fd, b"next\n") == 5             # the next line works
assert os.write(fd, b"e" * 500) == 500
assert os.write(fd, b"e" * 499 + b"\n") == 500  # 1000 bytes: fits
os.close(fd)
assert content(p) == b"next\n" + b"e" * 999 + b"\n"
# At close a held line that fits is committed, one that does not is not.
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
os.write(fd, b"f" * 999)
os.close(fd)
assert content(p).endswith(b"\n" + b"f" * 999 + b"\n")
'
	[ "$(xget records "$MNT/t/0")" = 3 ]
	run grep -c '[abcdl]' "$MNT/t/0"
	[ "$output" = 0 ]
}

@test "a refused write that the program re-sends is never stored as a fragment (max.record.bytes=1000)" {
	pyrun '
p = mnt + "/t/0"
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
bad = b"good1\n" + b"z" * 1200 + b"\ngood2\n"
expect("EFBIG", os.write, fd, bad)
expect("EFBIG", os.write, fd, bad)   # re-sent: still refused, surely heard
assert os.write(fd, bad) == len(bad) # re-sent again: the refused part goes
assert os.write(fd, b"next\n") == 5
os.close(fd)
assert content(p) == b"good2\nnext\n", content(p)
# A held line completed by a refused write, then re-sent by a buffered
# writer (Python keeps what a failed flush did not write).
f = open(p, "ab")
f.write(b"h" * 600)
f.flush()
f.write(b"h" * 600 + b"\nafter1\n")
try:
    f.flush()
    raise AssertionError("no EFBIG")
except OSError as e:
    assert e.errno == errno.EFBIG
for i in range(2, 4):
    f.write(b"after%d\n" % i)
    try:
        f.flush()
    except OSError as e:
        assert e.errno == errno.EFBIG
f.close()
tail = content(p)[len(b"good2\nnext\n"):]
# The first flush was refused, the second (a re-send) too, the third
# re-sent the refused bytes again: they were dropped, the rest stored.
assert tail == b"after1\nafter2\nafter3\n", tail[:80]
'
}

@test "lines over 1 MiB split by the kernel are EFBIG with the default max.record.bytes" {
	pyrun '
import mmap
p = mnt + "/t/0"
MiB = 1 << 20
buf = mmap.mmap(-1, 8 * MiB)
def at(align, data):
    # data placed "align" bytes after a page boundary: the kernel cuts
    # the write at max_write counted from there.
    buf[align:align + len(data)] = data
    return memoryview(buf)[align:align + len(data)]
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
assert os.write(fd, b"start\n") == 6
# One byte too long, aligned: refused in the first piece, nothing held.
expect("EFBIG", write_all, fd, at(0, b"x" * MiB + b"\n"))
write_all(fd, b"n1\n")
# Unaligned: the first piece is held and accepted (a short count), the
# second refused; the re-sent rest is refused too.
expect("EFBIG", write_all, fd, at(48, b"x" * MiB + b"\n"))
write_all(fd, b"n2\n")
# Three pieces, aligned: refused at once.
expect("EFBIG", write_all, fd, at(0, b"x" * (3 * MiB) + b"\n"))
write_all(fd, b"n3\n")
# Three pieces, unaligned: the program saw part of its line accepted
# (a short count) and gave the rest up after EFBIG; its next line
# completes that line and is refused with it, the one after works.
expect("EFBIG", write_all, fd, at(100, b"x" * (3 * MiB) + b"\n"))
expect("EFBIG", write_all, fd, b"glued\n")
write_all(fd, b"n4\n")
# Exactly the limit, unaligned (two pieces): stored.
write_all(fd, at(48, b"y" * (MiB - 1) + b"\n"))
write_all(fd, b"n5\n")
os.close(fd)
c = content(p)
assert c == b"start\nn1\nn2\nn3\nn4\n" + b"y" * (MiB - 1) + b"\nn5\n", \
    (len(c), c[:60])
'
	[ "$(xget records "$MNT/t/0")" = 7 ]
	# The same through the shell and through Python's buffered files.
	run bash -c "printf '%1100000s\n' x >>'$MNT/t/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"File too large"* ]]
	echo n6 >>"$MNT/t/0"
	pyrun '
p = mnt + "/t/0"
# Python buffers what follows a short count; a failed flush keeps its
# buffer and re-sends it.  Whether the line after a long one survives
# depends on where the kernel cut the long one (see the file comment):
# the one after that always does, and nothing is stored twice.
for big, after in [("q" * (2 << 20), ["n7", "n8", "n9"]),
                   ("r" * (1 << 20), ["m7", "m8", "m9"])]:
    errors = 0
    f = open(p, "a")
    for line in [big] + after:
        try:
            f.write(line + "\n")
            f.flush()
        except OSError as e:
            assert e.errno == errno.EFBIG, e
            errors += 1
    f.close()
    assert 1 <= errors <= 2, errors
lines = content(p).split(b"\n")
MiB = 1 << 20
allowed = [b"start", b"y" * (MiB - 1), b""] + [b"n%d" % i for i in range(1, 10)]
assert not [l[:20] for l in lines if l not in allowed + [b"m7", b"m8", b"m9"]]
for l in [b"n6", b"n8", b"n9", b"m7", b"m8", b"m9"]:
    assert lines.count(l) == 1, (l, lines[-8:])
assert lines.count(b"n7") <= 1
assert lines[-3:] == [b"m8", b"m9", b""], lines[-8:]
'
}
