#!/usr/bin/env bats
# Records and offsets (design.md section 1): a record is a line, the file
# is the records back to back in commit order, byte offsets never move,
# a trailing partial line is held per open file, and writers never
# interleave inside a record however they or the kernel cut their writes.
#
# The writers are tests/tools/writer.c (self-checking records, random
# chunk sizes) and the checks tests/tools/checkrecords.c.

load helper
load contract

setup() {
	case "$BATS_TEST_DESCRIPTION" in
	*max.record.bytes=4M*) setup_node -o max.record.bytes=4M ;;
	*) setup_node ;;
	esac
	mkdir "$MNT/t"
}

teardown() {
	teardown_node
}

# Runs writer COUNT times at once, writer i (ids from $WBASE, default 0)
# on the i-th of FILES (paths under $MNT, round robin), with extra writer
# options; fails if any writer failed.
# Usage: run_writers COUNT RECORDS "FILES" [writer options...]
run_writers() {
	local n=$1 records=$2 files=($3) i pids=() rc=0 base=${WBASE:-0}
	shift 3
	for ((i = 0; i < n; i++)); do
		"$TOOLS/writer" "$@" "$MNT/${files[i % ${#files[@]}]}" \
			$((base + i)) "$records" 2>>"$T/writers.err" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || rc=1
	done
	if [ $rc -ne 0 ]; then
		cat "$T/writers.err" >&2
		return 1
	fi
}

@test "byte offsets are stable and tail -c +N replays from any record" {
	pyrun '
import random
random.seed(7)
fd = os.open(mnt + "/t/0", os.O_WRONLY | os.O_APPEND)
offs, pos = [], 0
with open(args[0], "w") as out:
    for i in range(300):
        rec = b"rec %d %s\n" % (i, b"p" * random.randrange(0, 3000))
        os.write(fd, rec)
        out.write("%d %d\n" % (i, pos))
        pos += len(rec)
os.close(fd)
assert os.stat(mnt + "/t/0").st_size == pos
' "$T/offsets"
	size=$(fsize "$MNT/t/0")
	before=$(md5sum <"$MNT/t/0")
	for i in 0 1 17 150 299; do
		off=$(awk -v i=$i '$1 == i {print $2}' "$T/offsets")
		[ "$(tail -c +$((off + 1)) "$MNT/t/0" | head -n 1 | cut -d' ' -f1-2)" = "rec $i" ]
		[ "$(xget offset.$i "$MNT/t/0")" = "$off" ]
		# Reading at an offset in the middle of a record gives its rest.
		[ "$(tail -c +$((off + 3)) "$MNT/t/0" | head -n 1 | cut -d' ' -f1-2)" = "c $i" ]
	done
	# More appends, through other files and programs, move nothing.
	"$TOOLS/writer" "$MNT/t/0" 1 500
	[ "$(head -c "$size" "$MNT/t/0" | md5sum)" = "$before" ]
	off=$(awk '$1 == 150 {print $2}' "$T/offsets")
	[ "$(tail -c +$((off + 1)) "$MNT/t/0" | head -n 1 | cut -d' ' -f1-2)" = "rec 150" ]
	"$TOOLS/checkrecords" -x -o "$size" -W 1 -n 500 "$MNT/t/0"
	# dd with skip= reads the same bytes as tail -c.
	[ "$(dd if="$MNT/t/0" bs=1 skip="$off" count=7 status=none)" = "rec 150" ]
}

@test "a partial line is held per open file, completed by the next write, committed at close" {
	pyrun '
p = mnt + "/t/0"
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
os.write(fd, b"abc")
assert os.stat(p).st_size == 0 and content(p) == b""
os.write(fd, b"def\n")
assert content(p) == b"abcdef\n"
os.write(fd, b"ghi")
assert content(p) == b"abcdef\n"
os.close(fd)
assert content(p) == b"abcdef\nghi\n", content(p)
# A held line is invisible to readers, and other files append meanwhile.
a = os.open(p, os.O_WRONLY | os.O_APPEND)
b = os.open(p, os.O_WRONLY | os.O_APPEND)
os.write(a, b"A-start")
os.write(b, b"B-line\n")
os.write(a, b"-end\nA-next")
assert content(p).endswith(b"ghi\nB-line\nA-start-end\n")
os.close(b)
os.close(a)
assert content(p).endswith(b"\nA-next\n")
'
	[ "$(xget records "$MNT/t/0")" = 5 ]
	# The shell: printf without a newline, then close.
	printf 'no newline' >>"$MNT/t/0"
	[ "$(tail -n 1 "$MNT/t/0")" = "no newline" ]
	[ "$(tail -c 1 "$MNT/t/0" | od -An -c | tr -d ' ')" = '\n' ]
}

@test "two writers holding partial lines never interleave inside a record" {
	pyrun '
p = mnt + "/t/0"
a = os.open(p, os.O_WRONLY | os.O_APPEND)
b = os.open(p, os.O_WRONLY | os.O_APPEND)
for fd, data in [(a, b"A1-a"), (b, b"B1-a"), (a, b"b\nA2-a"), (b, b"b\nB2-"),
                 (a, b"b\n"), (b, b"b\n")]:
    assert os.write(fd, data) == len(data)
os.close(a)
os.close(b)
assert content(p) == b"A1-ab\nB1-ab\nA2-ab\nB2-b\n", content(p)
'
	# Four processes cutting their lines into 1 to 100 byte writes.
	run_writers 4 400 t/0 -c 1 -C 100 -l 40 -L 300
	"$TOOLS/checkrecords" -x -W 4 -n 400 "$MNT/t/0"
}

@test "concurrent >> shell loops append whole lines" {
	local id pids=()
	for id in 0 1 2 3 4 5; do
		(
			for i in $(seq 1 250); do
				echo "sh$id $i $(printf "%0$((i % 97 + 1))d" 0)" >>"$MNT/t/0"
			done
		) &
		pids+=($!)
	done
	# (A bare wait would wait for the daemon too.)
	wait "${pids[@]}"
	[ "$(xget records "$MNT/t/0")" = 1500 ]
	awk '
	{
		if (NF != 3 || $1 !~ /^sh[0-5]$/ || length($3) != $2 % 97 + 1 ||
		    $2 != last[$1] + 1) { print "bad line " NR ": " $0; bad = 1 }
		last[$1] = $2
	}
	END {
		for (w in last) if (last[w] != 250) { print w " ends at " last[w]; bad = 1 }
		exit bad
	}' "$MNT/t/0"
}

@test "8 writers with mixed-size chunks on one partition: every record intact, in order" {
	run_writers 8 1500 t/0
	run "$TOOLS/checkrecords" -W 8 -n 1500 "$MNT/t/0"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(xget records "$MNT/t/0")" = 12000 ]
	[ "$(metric topicfs_partition_append_records_total t 0)" -eq 12000 ]
	# Every writer's handle is gone again (the reader of metrics is one).
	wait_for 5 grep -qx 'topicfs_open_handles 1' "$MNT/.topicfs/metrics"
}

@test "8 writers on 4 partitions: every record intact, in order, where it was written" {
	xset partitions 4 "$MNT/t"
	run_writers 8 1200 "t/0 t/1 t/2 t/3"
	for p in 0 1 2 3; do
		# writers p and p+4 wrote partition p.
		run "$TOOLS/checkrecords" -W 2 -n 1200 "$MNT/t/$p"
		echo "$output"
		[ "$status" -eq 0 ]
		[[ "$output" == *"writer $p records 1200"* ]]
		[[ "$output" == *"writer $((p + 4)) records 1200"* ]]
	done
}

@test "O_APPEND writes bigger than 1 MiB are cut by the kernel and stay intact" {
	# 1.1 to 3 MiB per write(), many lines each, lines cut across writes.
	run_writers 3 5000 t/0 -c 1100K -C 3M
	run "$TOOLS/checkrecords" -W 3 -n 5000 "$MNT/t/0"
	echo "$output"
	[ "$status" -eq 0 ]
	# Each write() of more than max_write arrived as several batches.
	[ "$(metric topicfs_partition_appends_total t 0)" -gt 3 ]
}

@test "lines longer than 1 MiB are stored when max.record.bytes=4M allows them" {
	run_writers 3 12 t/0 -l 1100K -L 3900K -c 1 -C 4M
	run "$TOOLS/checkrecords" -W 3 -n 12 "$MNT/t/0"
	echo "$output"
	[ "$status" -eq 0 ]
	pyrun '
MiB = 1 << 20
p = mnt + "/t/0"
size = os.stat(p).st_size
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
write_all(fd, b"L" * (4 * MiB - 1) + b"\n")      # exactly the limit
expect("EFBIG", write_all, fd, b"M" * (4 * MiB) + b"\n")
write_all(fd, b"after\n")
os.close(fd)
with open(p, "rb") as f:
    f.seek(size)
    assert f.read() == b"L" * (4 * MiB - 1) + b"\nafter\n"
'
}

@test "readers only ever see whole records while writers append" {
	"$TOOLS/writer" "$MNT/t/0" 9 1 # so that the file is not empty
	# The reader checks that the committed end is always a record's end.
	pyrun '
p = mnt + "/t/0"
fd = os.open(p, os.O_RDONLY)
open(args[1], "w").close()
checks = 0
deadline = time.time() + 60
while not os.path.exists(args[0]) and time.time() < deadline:
    size = os.fstat(fd).st_size
    last = os.pread(fd, 1, size - 1)
    assert last == b"\n", (size, last)
    checks += 1
os.close(fd)
assert checks > 10, checks
print("checks", checks)
' "$T/done" "$T/ready" &
	local rpid=$! wpid
	wait_for 10 test -e "$T/ready"
	run_writers 4 3000 t/0 -C 64K -u 50
	touch "$T/done"
	wait "$rpid"
	"$TOOLS/checkrecords" -W 5 "$MNT/t/0"
	# Whole-file reads during the writes end on a record boundary too.
	WBASE=10 run_writers 4 1500 t/0 -C 64K -u 50 &
	wpid=$!
	for i in 1 2 3 4 5; do
		"$TOOLS/checkrecords" "$MNT/t/0" >/dev/null
	done
	wait "$wpid"
	"$TOOLS/checkrecords" -W 9 "$MNT/t/0"
}

@test "O_DIRECT appends of several MiB per write arrive whole and in order" {
	# With asynchronous direct I/O the kernel would send the 1 MiB
	# pieces of one write at once and a threaded daemon reorder them.
	: >"$T/src"
	"$TOOLS/writer" "$T/src" 3 8000
	dd if="$T/src" of="$MNT/t/0" bs=4M oflag=append,direct conv=notrunc status=none
	cmp "$T/src" "$MNT/t/0"
	"$TOOLS/checkrecords" -W 1 -n 8000 "$MNT/t/0"
	# A shared writable mapping would write at offsets, not append: it
	# must be refused (direct I/O files cannot be mapped at all).
	pyrun '
import mmap
fd = os.open(mnt + "/t/0", os.O_RDWR | os.O_APPEND)
try:
    mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    raise AssertionError("writable shared mapping allowed")
except OSError:
    pass
os.close(fd)
'
	cmp "$T/src" "$MNT/t/0"
}
