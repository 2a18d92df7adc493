#!/usr/bin/env bats
# Corruption at rest, as a user meets it: one byte flipped in a sealed
# segment's .log or .index (bit rot, a bad disk, a stray tool), with the
# daemon stopped and while it runs (a write through the page cache is
# what the daemon reads next), with and without compression; and topics
# that cannot load at start.
#
# What must happen (docs/STATUS.md, docs/FORMAT.md):
#  * a read that touches a damaged batch fails with EIO; the bytes before
#    and after the batch are still served, byte for byte;
#  * the daemon logs the damage once, naming the file and the byte
#    offset, however often it is read and however many passes find it;
#  * the partition's status says "state": "corrupt" with
#    "corrupt_batches", and the metrics topicfs_partition_corrupt_batches;
#  * offset.N lookups through a damaged index entry fail with EIO;
#  * with compression=zstd the compactor leaves the damaged segment raw
#    and compresses the ones after it;
#  * the scrubber (scrub.interval.ms) finds damage with no read at all;
#  * a topic that cannot load is listed as failed, with its error.
#
# Each partition holds ~50 MB of fixed-size records in 1 MiB segments:
# "rec NNNNNNN ...\n" of 76 bytes, so record N starts at byte 76 * N,
# written 1724 records (131,024 bytes) per write(): one batch each.

load helper
load contract

REC=76
NREC=660000
PER_WRITE=1724

setup() {
	setup_node
}

teardown() {
	teardown_node
}

# Makes topic t with 1 MiB segments and NREC records; keeps a copy of the
# partition in $T/all.
fill() {
	mkdir "$MNT/t"
	xset segment.bytes 1MiB "$MNT/t"
	python3 - "$MNT/t/0" "$NREC" "$PER_WRITE" <<'EOF'
import os, sys
path, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
for first in range(0, n, per):
    buf = b"".join(b"rec %07d abcdefghijklmnopqrstuvwxyz0123456789 "
                   b"ABCDEFGHIJKLMNOPQRSTUVWXYZ\n" % i
                   for i in range(first, min(first + per, n)))
    assert os.write(fd, buf) == len(buf)
os.close(fd)
EOF
	cp "$MNT/t/0" "$T/all"
	[ "$(fsize "$T/all")" -eq $((NREC * REC)) ]
	# Dozens of sealed segments and the active one.
	[ "$(ls "$DATA/topics/t/0" | grep -c '\.log$')" -ge 40 ]
}

# The base offsets of the partition's segments, in order (20 digits).
bases() {
	ls "$DATA/topics/t/0" | sed -n 's/^\([0-9]\{20\}\)\.index$/\1/p' | sort
}

# batch_at ABS: "BASE OFFSET LENGTH FIRST_RECORD COUNT ENTRY" of the batch
# holding byte ABS, from its segment's index (either index version).
batch_at() {
	python3 - "$DATA/topics/t/0" "$1" <<'EOF'
import os, struct, sys
d, pos = sys.argv[1], int(sys.argv[2])
base = max(int(f[:20]) for f in os.listdir(d)
           if f.endswith(".index") and int(f[:20]) <= pos)
idx = open(os.path.join(d, "%020d.index" % base), "rb").read()
esize = struct.unpack_from("<H", idx, 10)[0]
for e in range(48, len(idx) - esize + 1, esize):
    off, rec, cnt, ln = struct.unpack_from("<QQII", idx, e)
    if off <= pos < off + ln:
        print("%020d %d %d %d %d %d" % (base, off, ln, rec, cnt,
                                        (e - 48) // esize))
        break
else:
    sys.exit("no batch holds byte %d" % pos)
EOF
}

# entry_pos BASE ENTRY: byte position of an index entry in its file.
entry_pos() {
	python3 - "$DATA/topics/t/0/$1.index" "$2" <<'EOF'
import struct, sys
h = open(sys.argv[1], "rb").read(48)
print(48 + struct.unpack_from("<H", h, 10)[0] * int(sys.argv[2]))
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
    sys.exit("no field %s in the status of %s/%s" % (sys.argv[4],
                                                     sys.argv[2], sys.argv[3]))
print(json.dumps(p[sys.argv[4]]))
EOF
}

is_corrupt() {
	[ "$(pstatus t 0 state)" = '"corrupt"' ]
}

# loglines WORD...: lines of the daemon log holding every WORD.
loglines() {
	local pat=$1
	shift
	local out
	out=$(grep -F -- "$pat" "$LOG" || true)
	for w in "$@"; do
		out=$(printf '%s\n' "$out" | grep -F -- "$w" || true)
	done
	printf '%s' "$out" | grep -c . || true
}

# Reads around a bad batch at OFF of LEN bytes: everything before and
# after it (up to END, the end by default) is served exactly, every read
# that touches it gets EIO.
check_reads_around() {
	pyrun '
off, ln = int(args[0]), int(args[1])
want = content(args[2])
end = int(args[3]) if len(args) > 3 else len(want)
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
assert read_range(off + ln, end) == want[off + ln:end], \
    "bytes after the bad batch differ"
expect("EIO", os.pread, fd, 10, off)
expect("EIO", os.pread, fd, 1, off + ln - 1)
expect("EIO", os.pread, fd, 1 << 20, off + ln // 2)
# A read that starts before the batch returns the bytes up to it.
b = os.pread(fd, 1 << 20, off - 1000)
assert b == want[off - 1000:off], "got %d bytes into a bad batch" % len(b)
os.close(fd)
' "$1" "$2" "$T/all" ${3:+"$3"}
}

# What a user sees of a bad batch at OFF (LEN bytes) in segment BASE:
# cat fails, dd and tail -c around it work, one log line, status corrupt.
check_user_view() {
	local base=$1 off=$2 len=$3
	run bash -c "cat '$MNT/t/0' >/dev/null"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Input/output error"* ]]
	# dd of whole MiBs before the damage, tail -c from past it.
	local mib=$((off / 1048576))
	cmp <(dd if="$MNT/t/0" bs=1M count=$mib status=none) \
		<(head -c $((mib * 1048576)) "$T/all")
	cmp <(head -c "$off" "$MNT/t/0") <(head -c "$off" "$T/all")
	cmp <(tail -c +$((off + len + 1)) "$MNT/t/0") \
		<(tail -c +$((off + len + 1)) "$T/all")
	# dd of a block inside the batch fails; of the block that ends in
	# it, it gets the bytes before it.
	run bash -c "dd if='$MNT/t/0' bs=4096 iflag=skip_bytes skip=$((off + 100)) count=1 status=none >/dev/null"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Input/output error"* ]]
	cmp <(dd if="$MNT/t/0" bs=4096 iflag=skip_bytes skip=$((off - 1000)) count=1 status=none) \
		<(tail -c +$((off - 1000 + 1)) "$T/all" | head -c 1000)
	check_reads_around "$off" "$len"
	run bash -c "cat '$MNT/t/0' >/dev/null"
	[ "$status" -ne 0 ]

	# One line names the file and the batch's offset, however often it
	# was read.
	[ "$(loglines "$base.log")" -eq 1 ] || { grep -F "$base" "$LOG" >&2; false; }
	[ "$(loglines "$base.log" "offset $off ")" -eq 1 ]
	[ "$(loglines "$base.log" "byte $((off - 10#$base)) ")" -eq 1 ]
	is_corrupt
	[ "$(pstatus t 0 corrupt_batches)" -eq 1 ]
	[ "$(metric topicfs_partition_corrupt_batches t 0)" -eq 1 ]
	# The partition goes on taking appends and serving them.
	echo "after the damage" >>"$MNT/t/0"
	[ "$(tail -c 17 "$MNT/t/0")" = "after the damage" ]
}

@test "a flipped byte in a sealed .log, daemon stopped: cat fails with EIO, dd and tail -c around it work, logged once, status corrupt" {
	fill
	mkdir "$MNT/other"
	echo fine >>"$MNT/other/0"
	stop_node
	base=$(bases | sed -n 10p)
	# The 'a' of a record in the middle of the tenth segment.
	abs=$(((10#$base / REC + 5000) * REC + 12))
	read -r b off len _ <<<"$(batch_at "$abs")"
	[ "$b" = "$base" ]
	flip "$DATA/topics/t/0/$base.log" $((abs - 10#$base))
	start_node
	[ "$(pstatus t 0 state)" = '"ok"' ]

	check_user_view "$base" "$off" "$len"
	[ "$(pstatus other 0 state)" = '"ok"' ]
	[ "$(pstatus other 0 corrupt_batches)" -eq 0 ]
	[ "$(metric topicfs_partition_corrupt_batches other 0)" -eq 0 ]
	[ "$(cat "$MNT/other/0")" = fine ]
}

@test "a flipped byte in a sealed .log while the daemon runs: the next read sees it, EIO, logged once" {
	fill
	base=$(bases | sed -n 20p)
	abs=$(((10#$base / REC + 3000) * REC + 40))
	read -r b off len _ <<<"$(batch_at "$abs")"
	[ "$b" = "$base" ]
	# Read it once whole: good.
	cmp "$MNT/t/0" "$T/all"
	flip "$DATA/topics/t/0/$base.log" $((abs - 10#$base))

	check_user_view "$base" "$off" "$len"
}

@test "a flipped byte in a sealed .index: offset.N lookups through it give EIO, logged once, status corrupt" {
	fill
	stop_node
	base=$(bases | sed -n 12p)
	read -r b off len first count entry <<<"$(batch_at $((10#$base + 5 * PER_WRITE * REC / 2)))"
	[ "$b" = "$base" ]
	# The record field of the entry: its CRC no longer matches.
	flip "$DATA/topics/t/0/$base.index" $(($(entry_pos "$base" "$entry") + 8))
	start_node

	for n in "$first" $((first + count / 2)) $((first + count - 1)); do
		run xget "offset.$n" "$MNT/t/0"
		[ "$status" -ne 0 ]
		[[ "$output" == *"Input/output error"* ]]
	done
	# The batches around it, and other segments, look up right.
	[ "$(xget offset.$((first - 1)) "$MNT/t/0")" -eq $(((first - 1) * REC)) ]
	[ "$(xget offset.$((first + count)) "$MNT/t/0")" -eq $(((first + count) * REC)) ]
	[ "$(xget offset.10 "$MNT/t/0")" -eq $((10 * REC)) ]
	[ "$(xget offset.$((NREC - 1)) "$MNT/t/0")" -eq $(((NREC - 1) * REC)) ]
	# Its bytes cannot be read without the entry; the rest can.
	check_reads_around "$off" "$len"
	run bash -c "cat '$MNT/t/0' >/dev/null"
	[ "$status" -ne 0 ]

	run xget "offset.$first" "$MNT/t/0"
	[ "$status" -ne 0 ]
	[ "$(loglines "$base.index")" -eq 1 ] || { grep -F "$base" "$LOG" >&2; false; }
	[ "$(loglines "$base.index" "entry $entry ")" -eq 1 ]
	is_corrupt
	[ "$(pstatus t 0 corrupt_batches)" -eq 1 ]
	[ "$(metric topicfs_partition_corrupt_batches t 0)" -eq 1 ]
}

# Waits until every sealed segment but BASE is compressed and BASE is raw.
all_compressed_but() {
	local d=$DATA/topics/t/0 sealed
	sealed=$(($(bases | wc -l) - 1))
	[ -e "$d/$1.log" ] && [ ! -e "$d/$1.zst" ] &&
		[ "$(ls "$d" | grep -c '\.zst$')" -eq $((sealed - 1)) ]
}

last_retention_not() {
	[ "$(pstatus t 0 last_retention)" != "$1" ]
}

# Waits for two more compactor passes: each one stamps last_retention.
two_more_passes() {
	local a
	a=$(pstatus t 0 last_retention)
	wait_for 10 last_retention_not "$a"
	a=$(pstatus t 0 last_retention)
	wait_for 10 last_retention_not "$a"
}

@test "compression=zstd: the compactor leaves a segment with a flipped .log byte raw and compresses the later ones" {
	fill
	stop_node
	base=$(bases | sed -n 3p)
	abs=$(((10#$base / REC + 7000) * REC + 12))
	read -r b off len _ <<<"$(batch_at "$abs")"
	[ "$b" = "$base" ]
	flip "$DATA/topics/t/0/$base.log" $((abs - 10#$base))
	start_node -o retention.check.interval.ms=200
	xset compression zstd "$MNT/t"

	wait_for 60 all_compressed_but "$base" || {
		ls -l "$DATA/topics/t/0" >&2
		false
	}
	sealed=$(($(bases | wc -l) - 1))
	[ "$(pstatus t 0 compressed_segments)" -eq $((sealed - 1)) ]
	# Found by the compactor itself, without a read.
	[ "$(pstatus t 0 reads)" -eq 0 ]
	is_corrupt
	[ "$(pstatus t 0 corrupt_batches)" -eq 1 ]
	two_more_passes
	# The damage and the decision to leave it raw, once each.
	[ "$(loglines "$base.log" "offset $off ")" -eq 1 ] || { grep -F "$base" "$LOG" >&2; false; }
	[ "$(loglines "$base" "stays uncompressed")" -eq 1 ]
	[ "$(loglines "$base")" -eq 2 ]
	check_reads_around "$off" "$len"
	[ "$(loglines "$base")" -eq 2 ]
	# Compressed data reads back as written.
	cmp <(tail -c +$((off + len + 1)) "$MNT/t/0") <(tail -c +$((off + len + 1)) "$T/all")
}

@test "compression=zstd: a flipped byte in a .zst frame gives EIO there, logged once" {
	fill
	stop_node
	start_node -o retention.check.interval.ms=200
	xset compression zstd "$MNT/t"
	sealed=$(($(bases | wc -l) - 1))
	wait_for 60 bash -c "[ \$(ls '$DATA/topics/t/0' | grep -c '\\.zst\$') -eq $sealed ]"
	stop_node
	base=$(bases | sed -n 5p)
	# A byte in the middle of the compressed data (frames come first).
	flip "$DATA/topics/t/0/$base.zst" $(($(fsize "$DATA/topics/t/0/$base.zst") / 3))
	start_node

	run bash -c "cat '$MNT/t/0' >/dev/null"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Input/output error"* ]]
	run bash -c "cat '$MNT/t/0' >/dev/null"
	[ "$status" -ne 0 ]
	# Everything before the segment reads back; one line names the file.
	cmp <(head -c $((10#$base)) "$MNT/t/0") <(head -c $((10#$base)) "$T/all")
	[ "$(loglines "$base.zst")" -eq 1 ] || { grep -F "$base" "$LOG" >&2; false; }
	is_corrupt
	[ "$(pstatus t 0 corrupt_batches)" -ge 1 ]
}

@test "the scrubber (-o scrub.interval.ms=500) reports a flipped .log byte and a flipped .index byte with no read at all" {
	fill
	stop_node
	b1=$(bases | sed -n 4p)
	abs=$(((10#$b1 / REC + 100) * REC + 20))
	read -r _ off len _ <<<"$(batch_at "$abs")"
	flip "$DATA/topics/t/0/$b1.log" $((abs - 10#$b1))
	b2=$(bases | sed -n 30p)
	flip "$DATA/topics/t/0/$b2.index" $(($(entry_pos "$b2" 3) + 17))
	start_node -o scrub.interval.ms=500 -o log.level=debug

	wait_for 30 bash -c "[ \"\$(grep -c 'scrubber: pass' '$LOG')\" -ge 1 ]"
	[ "$(pstatus t 0 state)" = '"corrupt"' ]
	[ "$(pstatus t 0 corrupt_batches)" -eq 2 ]
	[ "$(metric topicfs_partition_corrupt_batches t 0)" -eq 2 ]
	# Nobody read the partition: the scrubber found both.
	[ "$(pstatus t 0 reads)" -eq 0 ]
	# Two more passes later, still one line each.
	n=$(grep -c 'scrubber: pass' "$LOG")
	wait_for 30 bash -c "[ \"\$(grep -c 'scrubber: pass' '$LOG')\" -ge $((n + 2)) ]"
	[ "$(loglines "$b1.log" "offset $off ")" -eq 1 ]
	[ "$(loglines "$b1.log")" -eq 1 ]
	[ "$(loglines "$b2.index" "entry 3 ")" -eq 1 ]
	[ "$(pstatus t 0 corrupt_batches)" -eq 2 ]
	[ "$(pstatus t 0 reads)" -eq 0 ]
	# And a reader meets the same damage.
	check_reads_around "$off" "$len" $((10#$b2))
	[ "$(loglines "$b1.log")" -eq 1 ]
}

# The topics of .topicfs/status: "name state error" per line.
topic_states() {
	python3 - "$MNT/.topicfs/status" <<'EOF'
import json, sys
for t in json.load(open(sys.argv[1]))["topics"]:
    print(t["name"], t.get("state"), t.get("error", "-").replace(" ", "_"))
EOF
}

@test "a topic whose topic.json is damaged is listed as failed, with its error; its name stays taken; the others are served" {
	mkdir "$MNT/good" "$MNT/bad"
	echo one >>"$MNT/good/0"
	echo two >>"$MNT/bad/0"
	stop_node
	printf '{"config": {' >"$DATA/topics/bad/topic.json"
	start_node

	run topic_states
	[ "${lines[0]%% *}" = bad ]
	[[ "${lines[0]}" == "bad failed "*topic.json* ]]
	[ "${lines[1]}" = "good ok -" ]
	grep -qx 'topicfs_topic_failed{topic="bad"} 1' "$MNT/.topicfs/metrics"
	grep -qx 'topicfs_topic_failed{topic="good"} 0' "$MNT/.topicfs/metrics"
	grep -q 'topic bad cannot be loaded' "$LOG"
	# Its name is taken, its files are left as they were.
	run mkdir "$MNT/bad"
	[ "$status" -ne 0 ]
	[[ "$output" == *"File exists"* ]]
	[ "$(cat "$DATA/topics/bad/topic.json")" = '{"config": {' ]
	echo three >>"$MNT/good/0"
	[ "$(cat "$MNT/good/0")" = "$(printf 'one\nthree')" ]
}

@test "a topic whose partitions cannot open for want of descriptors is listed as failed; the small one is served" {
	mkdir "$MNT/small" "$MNT/wide"
	echo one >>"$MNT/small/0"
	xset partitions 60 "$MNT/wide"
	echo two >>"$MNT/wide/59"
	stop_node
	# Each partition keeps its directory and two segment files open.
	launch prlimit --nofile=96:96 "$TOPICFS" -f "$DATA" "$MNT"

	run topic_states
	[ "${lines[0]}" = "small ok -" ]
	[[ "${lines[1]}" == "wide failed "*"Too_many_open_files"* ]]
	grep -qx 'topicfs_topic_failed{topic="wide"} 1' "$MNT/.topicfs/metrics"
	[ "$(cat "$MNT/small/0")" = one ]
	run mkdir "$MNT/wide"
	[ "$status" -ne 0 ]
	# With descriptors enough, it is back.
	stop_node
	start_node
	run topic_states
	[ "${lines[1]}" = "wide ok -" ]
	[ "$(cat "$MNT/wide/59")" = two ]
}
