#!/usr/bin/env bats
# Retention, segment rolling and zstd-compressed segments, through the
# mount.  The compactor runs every 200 ms here (retention.check.interval.ms).

load helper

setup() {
	setup_node -o retention.check.interval.ms=200
}

teardown() {
	teardown_node
}

# Appends N web-log lines to FILE in writes of about 64 KiB.
weblog() {
	local file=$1 n=$2 from=${3:-0}
	python3 - "$file" "$n" "$from" <<'EOF'
import sys
f, n, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
paths = ["/", "/index.html", "/api/v1/items?page=%d", "/static/app.js", "/login"]
out = open(f, "a", buffering=1 << 16)
for i in range(start, start + n):
    p = paths[i % 5] % (i % 9) if "%d" in paths[i % 5] else paths[i % 5]
    out.write('10.0.%d.%d - - [22/Nov/2026:10:%02d:%02d +0000] "GET %s HTTP/1.1" %d %d "-" "Mozilla/5.0 (X11; Linux x86_64)" rid=%08d\n'
              % (i % 256, (i * 7) % 256, (i // 60) % 60, i % 60, p,
                 404 if i % 17 == 0 else 200, 100 + (i * 37) % 5000, i))
out.close()
EOF
}

segments() {
	ls "$DATA/topics/$1/$2" | grep -cE '\.(log|zst)$'
}

start_of() {
	xget start "$1"
}

# Predicates for wait_for (re-evaluated on every poll).
start_moved() {
	[ "$(start_of "$1")" -gt 0 ]
}

segments_are() {
	[ "$(segments "$1" "$2")" -eq "$3" ]
}

@test "segments roll by segment.bytes and retention.bytes deletes the oldest" {
	mkdir "$MNT/web"
	xset segment.bytes 64KiB "$MNT/web"
	weblog "$MNT/web/0" 5000
	cp "$MNT/web/0" "$T/all"
	[ "$(segments web 0)" -gt 8 ]
	size=$(fsize "$MNT/web/0")
	xset retention.bytes 200KiB "$MNT/web"
	wait_for 10 start_moved "$MNT/web/0"
	start=$(start_of "$MNT/web/0")
	# The file keeps its size and every byte keeps its offset.
	[ "$(fsize "$MNT/web/0")" -eq "$size" ]
	cmp <(tail -c +$((start + 1)) "$MNT/web/0") <(tail -c +$((start + 1)) "$T/all")
	# Below the start: ENODATA, never made-up bytes.
	run dd if="$MNT/web/0" bs=100 count=1 status=none
	[ "$status" -ne 0 ]
	[[ "$output" == *"No data available"* ]]
	run python3 -c "import os; fd=os.open('$MNT/web/0', os.O_RDONLY); print(os.lseek(fd, 0, os.SEEK_DATA))"
	[ "$output" = "$start" ]
	grep -q "topicfs_partition_retention_deleted_segments_total{topic=\"web\",partition=\"0\"} [1-9]" \
		"$MNT/.topicfs/metrics"
	# What remains on disk is about retention.bytes (whole segments).
	kept=$(du -b --apparent-size -c "$DATA"/topics/web/0/*.log | tail -1 | cut -f1)
	[ "$kept" -ge $((200 * 1024)) ]
	[ "$kept" -lt $((200 * 1024 + 3 * 65536)) ]
}

@test "retention.ms deletes old segments; the active segment stays" {
	mkdir "$MNT/old"
	xset segment.bytes 16KiB "$MNT/old"
	weblog "$MNT/old/0" 1000
	size=$(fsize "$MNT/old/0")
	sleep 1.2
	xset retention.ms 1000 "$MNT/old"
	wait_for 10 segments_are old 0 1
	start=$(start_of "$MNT/old/0")
	[ "$start" -gt 0 ]
	[ "$(fsize "$MNT/old/0")" -eq "$size" ]
	# The active segment keeps the newest records.
	[ "$(tail -c +$((start + 1)) "$MNT/old/0" | wc -l)" -gt 0 ]
	echo "new line" >>"$MNT/old/0"
	[ "$(tail -n 1 "$MNT/old/0")" = "new line" ]
}

@test "segment.ms rolls the active segment when it gets old" {
	mkdir "$MNT/slow"
	xset segment.ms 1000 "$MNT/slow"
	echo first >>"$MNT/slow/0"
	wait_for 10 segments_are slow 0 2
	echo second >>"$MNT/slow/0"
	[ "$(cat "$MNT/slow/0")" = "$(printf 'first\nsecond')" ]
}

@test "compression=zstd: reads across the raw/compressed boundary are byte-identical" {
	mkdir "$MNT/z"
	xset segment.bytes 256KiB "$MNT/z"
	xset compression zstd "$MNT/z"
	weblog "$MNT/z/0" 20000
	cp "$MNT/z/0" "$T/all"
	# Sealed segments get compressed once they are checkpointed.
	wait_for 20 bash -c "[ \$(ls '$DATA/topics/z/0' | grep -c '\.zst\$') -ge 3 ] && \
		[ \$(ls '$DATA/topics/z/0' | grep -c '\.log\$') -eq 1 ]"
	cmp "$MNT/z/0" "$T/all"
	# Reads from odd offsets and with odd sizes, through the mount.
	for off in 1 4095 262143 262144 300001 600000; do
		cmp <(tail -c +$((off + 1)) "$MNT/z/0") <(tail -c +$((off + 1)) "$T/all")
	done
	cmp <(dd if="$MNT/z/0" bs=7777 status=none) "$T/all"
	# Record lookups still work in compressed segments.
	off=$(xget offset.12345 "$MNT/z/0")
	[ "$(tail -c +$((off + 1)) "$MNT/z/0" | head -1)" = "$(sed -n 12346p "$T/all")" ]
	# The space saved is real.
	zbytes=$(du -b -c "$DATA"/topics/z/0/*.zst | tail -1 | cut -f1)
	python3 - "$MNT/.topicfs/status" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
p = s["topics"][0]["partitions"][0]
assert p["compressed_segments"] >= 3, p
assert p["compression_ratio"] > 3, p
EOF
	# And survives a restart.
	stop_node
	start_node -o retention.check.interval.ms=200
	cmp "$MNT/z/0" "$T/all"
}

@test "settings persist across a restart; invalid settings are refused" {
	mkdir "$MNT/cfg"
	xset retention.ms 3d "$MNT/cfg"
	xset retention.bytes 1GiB "$MNT/cfg"
	xset compression zstd "$MNT/cfg"
	xset segment.ms 1h "$MNT/cfg"
	run xset retention.ms soon "$MNT/cfg"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
	run xset compression lz4 "$MNT/cfg"
	[ "$status" -ne 0 ]
	run xset segment.bytes 1 "$MNT/cfg"
	[ "$status" -ne 0 ]
	run xset retention.bytes -5 "$MNT/cfg"
	[ "$status" -ne 0 ]
	stop_node
	start_node -o retention.check.interval.ms=200
	[ "$(xget retention.ms "$MNT/cfg")" = 259200000 ]
	[ "$(xget retention.bytes "$MNT/cfg")" = 1073741824 ]
	[ "$(xget compression "$MNT/cfg")" = zstd ]
	[ "$(xget segment.ms "$MNT/cfg")" = 3600000 ]
	[ "$(xget segment.bytes "$MNT/cfg")" = 1073741824 ]
}

@test "a reader keeps reading a segment deleted under it" {
	mkdir "$MNT/r"
	xset segment.bytes 64KiB "$MNT/r"
	weblog "$MNT/r/0" 3000
	cp "$MNT/r/0" "$T/all"
	# Open, read the first 1000 bytes, then let retention delete the
	# segment the reader is in, then read on.
	python3 - "$MNT/r/0" "$T/all" "$MNT/r" <<'EOF'
import errno, os, sys, time
path, ref, topic = sys.argv[1:4]
want = open(ref, "rb").read()
fd = os.open(path, os.O_RDONLY)
first = os.read(fd, 1000)
assert first == want[:1000]
os.setxattr(topic, "user.topicfs.retention.bytes", b"64KiB")
deadline = time.time() + 10
while int(os.getxattr(path, "user.topicfs.start")) == 0:
    assert time.time() < deadline, "retention did not run"
    time.sleep(0.05)
# The next read below the start fails with ENODATA: never garbage.
try:
    data = os.read(fd, 1000)
    assert data == want[1000:2000], "garbage after deletion"
    print("read the held bytes")
except OSError as e:
    assert e.errno == errno.ENODATA, e
    print("ENODATA below the start")
start = int(os.getxattr(path, "user.topicfs.start"))
os.lseek(fd, start, os.SEEK_SET)
rest = b""
while True:
    b = os.read(fd, 1 << 20)
    if not b:
        break
    rest += b
assert rest == want[start:], "bytes after the start differ"
EOF
}
