#!/usr/bin/env bats
# Disk full (design.md section 1): a write that does not fit fails with
# ENOSPC and stores nothing, the mount keeps serving reads, and writes
# work again by themselves once space returns.  The data folder lives on
# a small loop-mounted ext4 with a filler file to delete.

load helper
load contract

setup() {
	require mkfs.ext4 mount umount
	setup_node
	stop_node
	DISK=$T/disk
	truncate -s 64M "$T/img"
	mkfs.ext4 -q "$T/img"
	mkdir "$DISK"
	mount -o loop "$T/img" "$DISK"
	# 8 MiB to give back later.
	dd if=/dev/zero of="$DISK/filler" bs=1M count=8 status=none conv=fsync
	DATA=$DISK/data
	start_node
}

teardown() {
	local rc=0
	if is_mounted "$MNT"; then
		stop_node || rc=1
	elif [ -n "${PID:-}" ] && daemon_alive; then
		kill -TERM "$PID"
		reap_daemon || rc=1
	fi
	if mountpoint -q "$DISK" 2>/dev/null; then
		umount "$DISK" || umount -l "$DISK" || rc=1
	fi
	teardown_node || rc=1
	return $rc
}

# Checks the partition's files: the .log sizes add up to the file size
# (nothing partial beyond the committed end) and every .index holds
# whole entries (a 48-byte header, 64-byte entries: index format 2).
check_files() {
	pyrun '
d = data + "/topics/" + args[0]
logs = sum(os.stat(d + "/" + f).st_size for f in os.listdir(d) if f.endswith(".log"))
size = os.stat(mnt + "/" + args[0]).st_size
assert logs == size, (logs, size)
for f in os.listdir(d):
    if f.endswith(".index"):
        assert (os.stat(d + "/" + f).st_size - 48) % 64 == 0, f
' "$1"
}

@test "disk full: ENOSPC stores nothing, reads go on, writes resume when space returns" {
	mkdir "$MNT/t"
	xset segment.bytes 1M "$MNT/t" # rolls while full, too
	"$TOOLS/writer" "$MNT/t/0" 1 300
	pyrun '
p = mnt + "/t/0"
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
def line(i):
    return b"F %08d " % i + b"f" * 988 + b"\n"   # 1000 bytes
seq, fails = 0, 0
for batch in [64, 8, 1]:
    while True:
        size = os.stat(p).st_size
        data = b"".join(line(seq + i) for i in range(batch))
        try:
            assert os.write(fd, data) == len(data)
            seq += batch
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
            assert os.stat(p).st_size == size, "a failed write changed the size"
            fails += 1
            break
        assert seq < 100000, "the disk never filled"
# Then the slack of the last blocks, two bytes at a time.
small = 0
while True:
    size = os.stat(p).st_size
    try:
        os.write(fd, b"s\n")
        small += 1
        assert small < 100000, "the disk never filled"
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
        assert os.stat(p).st_size == size
        break
# Nothing is held: the next writes fail the same way.
expect("ENOSPC", os.write, fd, line(seq))
expect("ENOSPC", os.write, fd, b"s\n")
os.close(fd)
open(args[0], "w").write("%d\n" % seq)
open(args[0] + ".small", "w").write("%d\n" % small)
print("lines", seq, "small", small, "failed writes", fails)
' "$T/seq"
	check_files t/0
	# Every record intact: the writer'"'"'s, then the F lines in order.
	"$TOOLS/checkrecords" -x -W 1 -n 300 "$MNT/t/0"
	pyrun '
n = int(open(args[0]).read())
lines = [l for l in open(mnt + "/t/0", "rb") if l.startswith(b"F ")]
assert len(lines) == n, (len(lines), n)
for i, l in enumerate(lines):
    assert l == b"F %08d " % i + b"f" * 988 + b"\n", i
' "$T/seq"
	# Reads, lookups and status keep working while full.
	before=$(md5sum <"$MNT/t/0")
	[ "$(md5sum <"$MNT/t/0")" = "$before" ]
	[ "$(tail -n 1 "$MNT/t/0")" = s ]
	[ "$(tail -c +$(($(xget offset.300 "$MNT/t/0") + 1)) "$MNT/t/0" | head -c 10)" = "F 00000000" ]
	[ "$(xget records "$MNT/t/0")" = $((300 + $(cat "$T/seq") + $(cat "$T/seq.small"))) ]
	[ "$(metric topicfs_partition_failed t 0)" -eq 0 ]
	python3 -m json.tool "$MNT/.topicfs/status" >/dev/null
	run bash -c "echo more >>'$MNT/t/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"No space left"* ]]
	# Space returns: writes work again without a restart.
	rm "$DISK/filler"
	sync -f "$DISK"
	wait_for 20 sh -c "echo back >>'$MNT/t/0'"
	"$TOOLS/writer" "$MNT/t/0" 2 1000
	"$TOOLS/checkrecords" -x -W 2 "$MNT/t/0" | grep -q 'writer 2 records 1000 '
	[ "$(tail -c 1 "$MNT/t/0" | od -An -c | tr -d ' ')" = '\n' ]
	check_files t/0
	# And it all survives a restart.
	after=$(md5sum <"$MNT/t/0")
	stop_node
	start_node
	[ "$(md5sum <"$MNT/t/0")" = "$after" ]
	check_files t/0
}

@test "disk full: a held partial line fails at close with ENOSPC, completes after" {
	mkdir "$MNT/t"
	pyrun '
p = mnt + "/t/0"
big = os.open(data + "/../fill", os.O_WRONLY | os.O_CREAT, 0o644)
try:
    while True:
        os.write(big, b"\0" * (1 << 20))
except OSError as e:
    assert e.errno == errno.ENOSPC
try:
    while True:
        os.write(big, b"\0" * 4096)
except OSError as e:
    assert e.errno == errno.ENOSPC
os.close(big)
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
# Holding a partial line needs no disk; committing it does (the disk has
# less than a page left, and a failed write gives back what it took).
assert os.write(fd, b"h" * 50000) == 50000
expect("ENOSPC", os.write, fd, b"x" * 100000 + b"\n")
assert os.stat(p).st_size == 0
# close() reports the held line it could not commit.
expect("ENOSPC", os.close, fd)
assert os.stat(p).st_size == 0
# Space returns; a held line is completed by the next write.
os.unlink(data + "/../fill")
os.sync()
deadline = time.time() + 20
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
os.write(fd, b"ab")
while True:
    try:
        os.write(fd, b"c\n")
        break
    except OSError as e:
        assert e.errno == errno.ENOSPC and time.time() < deadline
        time.sleep(0.05)
os.close(fd)
c = content(p)
assert c == b"abc\n" or c == b"h" * 50000 + b"\nabc\n", c[:20]
'
	check_files t/0
}

@test "disk full at a restart after kill -9: the topic opens, reads work, writes resume" {
	mkdir "$MNT/t"
	"$TOOLS/writer" "$MNT/t/0" 1 300
	pyrun '
p = mnt + "/t/0"
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
for rec in [b"f" * 999 + b"\n", b"s\n"]:
    try:
        while True:
            os.write(fd, rec)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
os.close(fd)
# Whatever is left goes to a file beside the data: nothing can be written.
big = os.open(data + "/../fill", os.O_WRONLY | os.O_CREAT, 0o644)
try:
    while True:
        os.write(big, b"\0" * 1024)
except OSError as e:
    assert e.errno == errno.ENOSPC, e
os.close(big)
'
	local md5
	md5=$(md5sum <"$MNT/t/0")
	# The recovery after a crash wants to write a checkpoint: it cannot.
	crash_node
	start_node
	[ "$(ls "$MNT")" = t ]
	[ "$(md5sum <"$MNT/t/0")" = "$md5" ]
	"$TOOLS/checkrecords" -x -W 1 -n 300 "$MNT/t/0"
	run bash -c "echo more >>'$MNT/t/0'"
	[[ "$output" == *"No space left"* ]]
	rm "$DISK/fill" "$DISK/filler"
	sync -f "$DISK"
	wait_for 20 sh -c "echo back >>'$MNT/t/0'"
	[ "$(tail -n 1 "$MNT/t/0")" = back ]
	check_files t/0
	# The checkpoint is written once there is room again.
	local end
	end=$(fsize "$MNT/t/0")
	wait_for 10 grep -q "^recovery_point $end " "$DATA/topics/t/0/checkpoint"
}

@test "disk full: mkdir, settings and partition growth fail with ENOSPC and change nothing" {
	mkdir "$MNT/t"
	echo one >>"$MNT/t/0"
	pyrun '
big = os.open(data + "/../fill", os.O_WRONLY | os.O_CREAT, 0o644)
for size in [1 << 20, 4096, 1024, 1]:
    try:
        while True:
            os.write(big, b"\0" * size)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
os.close(big)
t = mnt + "/t"
expect("ENOSPC", os.mkdir, mnt + "/u")
expect("ENOSPC", os.setxattr, t, "user.topicfs.retention.ms", b"1h")
expect("ENOSPC", os.setxattr, t, "user.topicfs.partitions", b"3")
assert sorted(os.listdir(mnt)) == [".topicfs", "t"], os.listdir(mnt)
assert os.getxattr(t, "user.topicfs.retention.ms") == b"604800000"
assert os.getxattr(t, "user.topicfs.partitions") == b"1"
assert sorted(os.listdir(t)) == [".follow", "0"], os.listdir(t)
assert sorted(f for f in os.listdir(data + "/topics/t") if f[0].isdigit()) == ["0"], os.listdir(data + "/topics/t")
assert [f for f in os.listdir(data + "/topics") if f != "t"] == [], os.listdir(data + "/topics")
'
	[ "$(cat "$MNT/t/0")" = one ]
	rm "$DISK/fill"
	sync -f "$DISK"
	wait_for 20 mkdir "$MNT/u"
	xset partitions 3 "$MNT/t"
	xset retention.ms 1h "$MNT/t"
	[ "$(ls "$MNT/t" | tr '\n' ' ')" = "0 1 2 " ]
	stop_node
	start_node
	[ "$(ls "$MNT" | tr '\n' ' ')" = "t u " ]
	[ "$(xget partitions "$MNT/t")" = 3 ]
	[ "$(xget retention.ms "$MNT/t")" = 3600000 ]
}
