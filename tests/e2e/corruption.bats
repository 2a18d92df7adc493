#!/usr/bin/env bats
# Corruption at rest, as a user meets it: a byte flipped in a sealed
# segment's .log or .index while the node is stopped (bit rot, a bad
# disk, a stray tool), with and without compression, and a topic whose
# topic.json no longer parses.
#
# What must happen (docs/FORMAT.md, docs/STATUS.md):
#  * a read that touches a damaged batch fails with EIO; the bytes before
#    and after that batch are still served, byte for byte;
#  * the daemon logs the damage once, with the segment's file name and
#    the byte offset of the batch (not once per read or per pass);
#  * the partition's status shows "state": "corrupt" and
#    "corrupt_batches"; the metrics topicfs_partition_corrupt_batches;
#  * offset.N lookups through a damaged index entry give EIO, logged once;
#  * with compression=zstd the compactor skips the damaged segment and
#    compresses the ones after it;
#  * the scrubber (scrub.interval.ms) finds damage without any read;
#  * a topic that cannot load is listed as failed, with its error.
#
# Every partition here holds fixed-size records, "rec NNNNNNN ...\n" of
# 76 bytes, so record N starts at byte 76 * N.

load helper
load contract

REC=76
NREC=60000

setup() {
	case "$BATS_TEST_DESCRIPTION" in
	zstd*) setup_node -o retention.check.interval.ms=200 ;;
	*) setup_node ;;
	esac
}

teardown() {
	teardown_node
}

# Makes topic t with 1 MiB segments and NREC records in writes of 52
# records; keeps a copy of the partition in $T/all.
fill() {
	mkdir "$MNT/t"
	xset segment.bytes 1MiB "$MNT/t"
	python3 - "$MNT/t/0" "$NREC" <<'EOF'
import os, sys
path, n = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
for first in range(0, n, 52):
    buf = b"".join(b"rec %07d abcdefghijklmnopqrstuvwxyz0123456789 "
                   b"ABCDEFGHIJKLMNOPQRSTUVWXYZ\n" % i
                   for i in range(first, min(first + 52, n)))
    assert os.write(fd, buf) == len(buf)
os.close(fd)
EOF
	cp "$MNT/t/0" "$T/all"
	[ "$(fsize "$T/all")" -eq $((NREC * REC)) ]
	# At least four sealed segments and the active one.
	[ "$(ls "$DATA/topics/t/0" | grep -c '\.log$')" -ge 5 ]
}

# The base offsets of the partition's segments, in order.
bases() {
	ls "$DATA/topics/t/0" | sed -n 's/^\([0-9]\{20\}\)\.index$/\1/p' | sort
}

# batch_at ABS: "BASE OFFSET LENGTH FIRST_RECORD COUNT ENTRY" of the batch
# holding byte ABS, read from the segment's index (BASE as 20 digits).
batch_at() {
	python3 - "$DATA/topics/t/0" "$1" <<'EOF'
import os, struct, sys
d, pos = sys.argv[1], int(sys.argv[2])
base = max(int(f[:20]) for f in os.listdir(d)
           if f.endswith(".index") and int(f[:20]) <= pos)
idx = open(os.path.join(d, "%020d.index" % base), "rb").read()
for e in range(48, len(idx) - 47, 48):
    off, rec, cnt, ln = struct.unpack_from("<QQII", idx, e)
    if off <= pos < off + ln:
        print("%020d %d %d %d %d %d" % (base, off, ln, rec, cnt, (e - 48) // 48))
        break
else:
    sys.exit("no batch holds byte %d" % pos)
EOF
}

# flip FILE POS: xor the byte at POS with 0x01 and sync the file.
flip() {
	python3 - "$1" "$2" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
pos = int(sys.argv[2])
b = os.pread(fd, 1, pos)
assert len(b) == 1 and b != b"\n", (pos, b)
os.pwrite(fd, bytes([b[0] ^ 1]), pos)
os.fsync(fd)
os.close(fd)
EOF
}

# pstatus TOPIC PART FIELD: a field of a partition in .topicfs/status.
pstatus() {
	python3 - "$MNT/.topicfs/status" "$@" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
t = [t for t in s["topics"] if t["name"] == sys.argv[2]]
assert t, "no topic %s in status" % sys.argv[2]
p = t[0]["partitions"][int(sys.argv[3])]
if sys.argv[4] not in p:
    sys.exit("no field %s in the status of %s/%s" % (sys.argv[4], sys.argv[2],
                                                     sys.argv[3]))
print(json.dumps(p[sys.argv[4]]))
EOF
}

is_corrupt() {
	[ "$(pstatus t 0 state)" = '"corrupt"' ]
}

# log_lines BASE OFF REL: lines of the daemon log that name the segment
# (its 20-digit base) and the batch (its byte offset, absolute or
# within the segment file).
log_lines() {
	grep -F "$1" "$LOG" | grep -cE "(^|[^0-9])($2|$3)([^0-9]|$)" || true
}

# Reads the partition around a bad batch at OFF of LEN bytes: everything
# before and after it must be served exactly, every read touching it EIO.
check_reads_around() {
	pyrun '
off, ln = int(args[0]), int(args[1])
want = content(args[2])
fd = os.open(mnt + "/t/0", os.O_RDONLY)
def read_range(a, b):
    got = b""
    while a < b:
        n = os.pread(fd, min(b - a, 1 << 20), a)
        assert n, "unexpected end of file at %d" % a
        got += n
        a += len(n)
    return got
assert read_range(0, off) == want[:off], "bytes before the bad batch differ"
assert read_range(off + ln, len(want)) == want[off + ln:], \
    "bytes after the bad batch differ"
expect("EIO", os.pread, fd, 10, off)
expect("EIO", os.pread, fd, 1, off + ln - 1)
expect("EIO", os.pread, fd, 1 << 20, off + ln // 2)
# A read that starts before the batch never returns its bytes: EIO, or
# a short read that stops where the batch starts.
try:
    b = os.pread(fd, 4096, off - 100)
    assert b == want[off - 100:off], "got %d bytes into a bad batch" % len(b)
except OSError as e:
    assert e.errno == errno.EIO, e
os.close(fd)
' "$1" "$2" "$T/all"
}

@test "a flipped byte in a sealed .log: cat fails with EIO, the rest is served, logged once, status corrupt" {
	fill
	mkdir "$MNT/other"
	echo fine >>"$MNT/other/0"
	stop_node
	base=$(bases | sed -n 2p)
	# The 'a' of a record in the middle of the second segment.
	abs=$(((10#$base / REC + 5000) * REC + 12))
	read -r b off len _ <<<"$(batch_at "$abs")"
	[ "$b" = "$base" ]
	flip "$DATA/topics/t/0/$base.log" $((abs - 10#$base))
	start_node

	run bash -c "cat '$MNT/t/0' >/dev/null"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Input/output error"* ]]
	check_reads_around "$off" "$len"
	# dd and tail -c from offsets before and after the batch.
	cmp <(dd if="$MNT/t/0" bs=4096 skip=$((off - 4096)) iflag=skip_bytes \
		count=1 status=none) <(tail -c +$((off - 4096 + 1)) "$T/all" | head -c 4096)
	cmp <(tail -c +$((off + len + 1)) "$MNT/t/0") <(tail -c +$((off + len + 1)) "$T/all")
	run bash -c "cat '$MNT/t/0' >/dev/null"
	[ "$status" -ne 0 ]

	# One line names the segment and the batch, however often it was read.
	run log_lines "$base" "$off" $((off - 10#$base))
	[ "$output" -eq 1 ] || { grep -F "$base" "$LOG" >&2; false; }
	[ "$(pstatus t 0 state)" = '"corrupt"' ]
	[ "$(pstatus t 0 corrupt_batches)" -eq 1 ]
	[ "$(metric topicfs_partition_corrupt_batches t 0)" -eq 1 ]
	[ "$(pstatus other 0 state)" = '"ok"' ]
	[ "$(pstatus other 0 corrupt_batches)" -eq 0 ]
	[ "$(metric topicfs_partition_corrupt_batches other 0)" -eq 0 ]
	# The partition goes on taking appends.
	echo "after the damage" >>"$MNT/t/0"
	[ "$(tail -c 17 "$MNT/t/0")" = "after the damage" ]
}

@test "a flipped byte in a sealed .index: offset lookups through it give EIO, logged once, status corrupt" {
	fill
	stop_node
	base=$(bases | sed -n 3p)
	entry=100
	read -r b off len first count e <<<"$(batch_at $((10#$base + entry * 52 * REC)))"
	[ "$e" -eq "$entry" ]
	# The record field of the entry: its CRC no longer matches.
	flip "$DATA/topics/t/0/$base.index" $((48 + 48 * entry + 8))
	start_node

	for n in "$first" $((first + count / 2)) $((first + count - 1)); do
		run xget "offset.$n" "$MNT/t/0"
		[ "$status" -ne 0 ]
		[[ "$output" == *"Input/output error"* ]]
	done
	# Lookups in the other segments are right.
	[ "$(xget offset.10 "$MNT/t/0")" -eq $((10 * REC)) ]
	[ "$(xget offset.$((NREC - 1)) "$MNT/t/0")" -eq $(((NREC - 1) * REC)) ]
	n=$(((10#$(bases | sed -n 2p)) / REC + 7))
	[ "$(xget offset.$n "$MNT/t/0")" -eq $((n * REC)) ]

	run xget "offset.$first" "$MNT/t/0"
	[ "$status" -ne 0 ]
	run bash -c "grep -F '$base' '$LOG' | grep -c index"
	[ "$output" -eq 1 ] || { grep -F "$base" "$LOG" >&2; false; }
	[ "$(pstatus t 0 state)" = '"corrupt"' ]
	[ "$(pstatus t 0 corrupt_batches)" -ge 1 ]
	[ "$(metric topicfs_partition_corrupt_batches t 0)" -ge 1 ]
}

# Waits until every sealed segment but BASE is compressed and BASE is
# still raw.
all_compressed_but() {
	local d=$DATA/topics/t/0 sealed
	sealed=$(($(bases | wc -l) - 1))
	[ -e "$d/$1.log" ] && [ ! -e "$d/$1.zst" ] &&
		[ "$(ls "$d" | grep -c '\.zst$')" -eq $((sealed - 1)) ]
}

@test "zstd: the compactor skips a segment with a flipped byte in its .log and compresses the later ones" {
	fill
	stop_node
	base=$(bases | sed -n 2p)
	abs=$(((10#$base / REC + 5000) * REC + 12))
	read -r b off len _ <<<"$(batch_at "$abs")"
	flip "$DATA/topics/t/0/$base.log" $((abs - 10#$base))
	start_node -o retention.check.interval.ms=200
	xset compression zstd "$MNT/t"

	wait_for 30 all_compressed_but "$base" || {
		ls -l "$DATA/topics/t/0" >&2
		false
	}
	sealed=$(($(bases | wc -l) - 1))
	[ "$(pstatus t 0 compressed_segments)" -eq $((sealed - 1)) ]
	wait_for 10 is_corrupt
	[ "$(pstatus t 0 corrupt_batches)" -eq 1 ]
	check_reads_around "$off" "$len"
	# Found by the compactor and by reads, logged once all the same,
	# also after more compactor passes.
	n1=$(grep -cF "$base" "$LOG")
	sleep 1
	[ "$(grep -cF "$base" "$LOG")" -eq "$n1" ]
	run log_lines "$base" "$off" $((off - 10#$base))
	[ "$output" -eq 1 ] || { grep -F "$base" "$LOG" >&2; false; }
	# Compressed data reads back as written.
	cmp <(head -c "$off" "$MNT/t/0") <(head -c "$off" "$T/all")
}

@test "zstd: the compactor skips a segment with a flipped byte in its .index and compresses the later ones" {
	fill
	stop_node
	base=$(bases | sed -n 2p)
	entry=50
	read -r b off len first count e <<<"$(batch_at $((10#$base + entry * 52 * REC)))"
	[ "$e" -eq "$entry" ]
	flip "$DATA/topics/t/0/$base.index" $((48 + 48 * entry + 8))
	start_node -o retention.check.interval.ms=200
	xset compression zstd "$MNT/t"

	wait_for 30 all_compressed_but "$base" || {
		ls -l "$DATA/topics/t/0" >&2
		false
	}
	sealed=$(($(bases | wc -l) - 1))
	[ "$(pstatus t 0 compressed_segments)" -eq $((sealed - 1)) ]
	run xget "offset.$first" "$MNT/t/0"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Input/output error"* ]]
	wait_for 10 is_corrupt
	n1=$(grep -cF "$base" "$LOG")
	sleep 1
	[ "$(grep -cF "$base" "$LOG")" -eq "$n1" ]
	run bash -c "grep -F '$base' '$LOG' | grep -c index"
	[ "$output" -eq 1 ] || { grep -F "$base" "$LOG" >&2; false; }
	# Lookups and reads in the compressed segments after it work.
	n=$((NREC - 3000))
	[ "$(xget offset.$n "$MNT/t/0")" -eq $((n * REC)) ]
	cmp <(tail -c +$((n * REC + 1)) "$MNT/t/0") <(tail -c +$((n * REC + 1)) "$T/all")
}

@test "the scrubber (scrub.interval.ms=500) reports a flipped byte in a sealed .log without any read" {
	fill
	stop_node
	base=$(bases | sed -n 3p)
	abs=$(((10#$base / REC + 100) * REC + 20))
	read -r b off len _ <<<"$(batch_at "$abs")"
	flip "$DATA/topics/t/0/$base.log" $((abs - 10#$base))
	start_node -o scrub.interval.ms=500

	wait_for 30 is_corrupt
	[ "$(pstatus t 0 corrupt_batches)" -eq 1 ]
	[ "$(metric topicfs_partition_corrupt_batches t 0)" -eq 1 ]
	# Nobody read the partition: the scrubber found it.
	[ "$(pstatus t 0 reads)" -eq 0 ]
	# Several scrub rounds later it is still one line.
	n1=$(grep -cF "$base" "$LOG")
	sleep 1.5
	[ "$(grep -cF "$base" "$LOG")" -eq "$n1" ]
	run log_lines "$base" "$off" $((off - 10#$base))
	[ "$output" -eq 1 ] || { grep -F "$base" "$LOG" >&2; false; }
	[ "$(pstatus t 0 corrupt_batches)" -eq 1 ]
}

@test "a topic whose topic.json is damaged is listed as failed, with its error, and the others are served" {
	mkdir "$MNT/good" "$MNT/bad"
	echo one >>"$MNT/good/0"
	echo two >>"$MNT/bad/0"
	stop_node
	printf '{"config": {' >"$DATA/topics/bad/topic.json"
	start_node

	python3 - "$MNT/.topicfs/status" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
by = {t["name"]: t for t in s["topics"]}
assert "bad" in by, "the failed topic is missing from status: %s" % sorted(by)
bad = by["bad"]
assert bad.get("state") == "failed", bad
assert isinstance(bad.get("error"), str) and bad["error"], bad
assert "good" in by and by["good"].get("state", "ok") == "ok", by.get("good")
EOF
	grep -qx 'topicfs_topic_failed{topic="bad"} 1' "$MNT/.topicfs/metrics"
	if grep 'topicfs_topic_failed{topic="good"} 1' "$MNT/.topicfs/metrics"; then
		false
	fi
	# Its files are left as they were; the good topic works.
	[ "$(cat "$DATA/topics/bad/topic.json")" = '{"config": {' ]
	echo three >>"$MNT/good/0"
	[ "$(cat "$MNT/good/0")" = "$(printf 'one\nthree')" ]
}
