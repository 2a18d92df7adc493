#!/bin/bash
# contrib/bench/compression.sh - the `zstd` workload of `make bench`:
# compressed against raw segments on realistic web-log lines.
#
#   contrib/bench/compression.sh [DIR]
#
# Mounts a topicfs of its own (build/topicfs -f -o
# retention.check.interval.ms=200, data and mount point under DIR, by
# default bench/work/zstd-STAMP), makes two topics with segment.bytes
# 64 MiB, `raw` (compression none) and `z` (compression zstd, the default
# level and frame size), and appends the same web-log lines to both
# (contrib/bench/weblog.c, seed 1, whole lines in 32 KiB writes).  Then:
#
#   1. seals the active segments (segment.ms = 1s) and waits until every
#      byte of `z` lives in .zst files (frame footers cover logical_bytes);
#   2. ratio: logical_bytes / data_bytes from .topicfs/status, the .zst
#      footers (raw bytes / file bytes), and `du` of both partitions;
#   3. compaction: the bytes compressed over the CPU time of the daemon's
#      tfs-compact thread (utime + stime), and over the wall time spent
#      writing the .zst files (each from its birth time to its last
#      modification: fsync and rename left out); and when each segment was
#      done (status sampled every 20 ms);
#   4. checks that both files read back through the mount give the
#      generator's checksum (weblog --sum, 1 MiB reads);
#   5. sequential reads through the mount with topicfs-perf consume, 1 MiB
#      and 64 KiB reads, raw and z paired in each round (the order swaps
#      every round), with the frame cache's hit and miss counts of each z
#      read; medians and the median of the per-round z/raw ratios;
#   6. a small table of zstd levels 1, 3, 9 and frame sizes 64 KiB,
#      256 KiB, 1 MiB on the first 128 MiB of the same lines (one topic
#      each, segment.bytes 8 MiB, made, filled, compressed, checked, read
#      three times and removed in turn).
#
# Every read is warm: the page cache holds the segment files (for z, the
# compressed bytes; every z read still decompresses each frame once, as
# the frame cache is smaller than the file).
#
# Writes DIR/result.json (what report.py turns into the "Compressed
# segments" section) and prints a summary on stderr.  Environment:
#   BENCH_QUICK=1          128 MiB instead of 1 GiB, 3 read rounds
#   BENCH_ZSTD_ROUNDS=N    read rounds (default 5, 3 quick)
#   BENCH_ZSTD_VARIANTS=0  skip the level / frame-size table
#   B=build                the build folder
# Exit status 0 when everything ran and checked out, 1 when a step failed
# (result.json says which and why), 2 when it could not start.
#
# It starts one daemon and stops exactly that one, by pid, after
# fusermount3 -u; every other process it starts it waits for.

set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
TOPICFS=$ROOT/$B/topicfs
PERF=$ROOT/$B/topicfs-perf
BIN=$ROOT/bench/work/bin
WEBLOG=$BIN/weblog
WEBLOG_SRC=$ROOT/contrib/bench/weblog.c
DIR=${1:-$ROOT/bench/work/zstd-$(date -u +%Y%m%d-%H%M%S)}
DATA=$DIR/data
MNT=$DIR/mnt
T0=$(date +%s.%N)

QUICK=${BENCH_QUICK:-0}
SEED=1
WSIZE=32K			# bytes per write(), whole lines
SEG=64MiB
# The variants stay larger than the default 64 MiB frame cache, so that
# their reads decompress every frame.
VBYTES=128M; VSEG=8MiB
if [ "$QUICK" = 1 ]; then
	BYTES=128M; ROUNDS=${BENCH_ZSTD_ROUNDS:-3}; NEED_GB=1
else
	BYTES=1G; ROUNDS=${BENCH_ZSTD_ROUNDS:-5}; NEED_GB=3
fi
VARIANTS=${BENCH_ZSTD_VARIANTS:-1}
# level:frame of each row of the variants table.
VARIANT_LIST="1:256KiB 3:256KiB 9:256KiB 3:64KiB 3:1MiB"
COMPRESS_DEADLINE=120		# seconds to wait for the compactor

. "$(dirname "$0")/lib.sh"
say() { printf 'zstd: %s\n' "$*" >&2; }

mkdir -p "$DIR" "$BIN" || exit 2
: >"$DIR/steps.jsonl"
STATUS=ok
REASON=""

# fail REASON: the workload failed; the rest is skipped, the result says why.
fail() {
	say "FAILED: $1"
	[ "$STATUS" = ok ] && REASON=$1
	STATUS=failed
}

# put KEY JSON: one fact for result.json.
put() { printf '{"k":"%s","v":%s}\n' "$1" "$2" >>"$DIR/steps.jsonl"; }

jstr() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

now_s() { date +%s.%N; }

# ---- set-up -------------------------------------------------------------------

for t in python3 fusermount3 setfattr timeout gcc du; do
	command -v $t >/dev/null || { say "missing $t: run contrib/install-deps.sh bench"; exit 2; }
done
[ -x "$TOPICFS" ] || { say "$B/topicfs not found (run make all)"; exit 2; }
[ -x "$PERF" ] || { say "$B/topicfs-perf not found (run make all)"; exit 2; }
if [ ! -x "$WEBLOG" ] || [ "$WEBLOG_SRC" -nt "$WEBLOG" ]; then
	gcc -O2 -Wall -Wextra -std=gnu11 -o "$WEBLOG" "$WEBLOG_SRC" \
		>"$DIR/weblog-build.log" 2>&1 ||
		{ say "cannot build weblog: $(tail -1 "$DIR/weblog-build.log")"; exit 2; }
fi
avail_gb=$(df -P -k "$DIR" | awk 'NR==2 { printf "%d", $4 / 1048576 }')
if [ "$avail_gb" -lt "$NEED_GB" ]; then
	say "only ${avail_gb} GiB free under $DIR; this workload needs ${NEED_GB} GiB"
	exit 2
fi

# ---- the daemon ------------------------------------------------------------------

TFS_PID=
TFS_EXIT=
POLL_PID=

stop_daemon() {
	[ -n "$TFS_PID" ] || return 0
	reap_fuse "$MNT" "$TFS_PID" topicfs
	TFS_EXIT=$REAPED_RC
	TFS_PID=
}

cleanup() {
	if [ -n "$POLL_PID" ]; then
		kill "$POLL_PID" 2>/dev/null
		wait "$POLL_PID" 2>/dev/null
		POLL_PID=
	fi
	stop_daemon
	rm -rf "$DATA"		# scratch; logs and results stay in $DIR
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

TFS_CMD="topicfs -f -o retention.check.interval.ms=200 DATA MNT"
START_ERR=
start_daemon() {		# sets TFS_PID; START_ERR on failure
	local end
	rm -rf "$DATA"
	mkdir -p "$DATA" "$MNT"
	"$TOPICFS" -f -o retention.check.interval.ms=200 "$DATA" "$MNT" \
		>"$DIR/topicfs.log" 2>&1 &
	TFS_PID=$!
	end=$(( $(date +%s) + 15 ))
	while [ "$(date +%s)" -le "$end" ]; do
		if is_mounted "$MNT" && timeout 5 stat "$MNT/.topicfs/status" >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$TFS_PID" 2>/dev/null || break
		sleep 0.05
	done
	START_ERR="topicfs did not mount within 15 s: $(tail -1 "$DIR/topicfs.log")"
	return 1
}

# ---- probes -----------------------------------------------------------------------

# pstat TOPIC KEY...: values of partition 0 of TOPIC from .topicfs/status.
pstat() {
	python3 - "$MNT/.topicfs/status" "$@" <<'EOF'
import json, sys
st = json.load(open(sys.argv[1]))
t = [t for t in st["topics"] if t["name"] == sys.argv[2]][0]
p = t["partitions"][0]
print(" ".join(str(p[k]) for k in sys.argv[3:]))
EOF
}

# tconf TOPIC KEY: a setting in effect for TOPIC.
tconf() {
	python3 - "$MNT/.topicfs/status" "$@" <<'EOF'
import json, sys
st = json.load(open(sys.argv[1]))
t = [t for t in st["topics"] if t["name"] == sys.argv[2]][0]
print(t["config"][sys.argv[3]])
EOF
}

# fcache: "hits misses" of the frame cache.
fcache() {
	python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["node"]["frame_cache"]; print(c["hits"], c["misses"])' \
		"$MNT/.topicfs/status"
}

# compact_ticks: utime + stime of the daemon's compactor thread, in ticks.
compact_ticks() {
	local t
	for t in /proc/"$TFS_PID"/task/*; do
		if [ "$(cat "$t/comm" 2>/dev/null)" = tfs-compact ]; then
			awk '{ print $14 + $15 }' "$t/stat"
			return 0
		fi
	done
	echo 0
}
TICK=$(getconf CLK_TCK)

# footers TOPIC: what the .zst files of TOPIC's partition 0 say, as JSON:
# their footers (see docs/FORMAT.md: the last 48 bytes of a .zst) and
# how long each took to write, from its birth time (the compactor creates
# BASE.zst.tmp when it starts on a segment, and rename keeps it) to its
# last modification (the footer, just before the fsync and the rename).
footers() {
	python3 - "$DATA/topics/$1/0" <<'EOF'
import glob, json, os, struct, subprocess, sys
files = sorted(glob.glob(os.path.join(sys.argv[1], "*.zst")))
raw = zst = frames = 0
secs = []
for f in files:
    size = os.path.getsize(f)
    with open(f, "rb") as fh:
        fh.seek(size - 48)
        foot = fh.read(48)
    magic, _ver, n, rawsize = struct.unpack_from("<8sIIQ", foot)
    if magic != b"TFSZSTD\x01":
        sys.exit(f"{f}: bad footer magic {magic!r}")
    raw += rawsize
    zst += size
    frames += n
    born, mod = (float(x) for x in subprocess.run(
        ["stat", "-c", "%.9W %.9Y", f], capture_output=True,
        text=True).stdout.split())
    secs.append(mod - born if born > 0 else None)
print(json.dumps({"segments": len(files), "raw_bytes": raw, "zst_bytes": zst,
                  "frames": frames, "write_seconds": secs}))
EOF
}

du_bytes() { du -s -B1 "$1" | cut -f1; }

# wait_compressed TOPIC BYTES TIMELINE: waits until the .zst footers of
# TOPIC cover BYTES logical bytes (every byte of the partition), sampling status every 20 ms and
# writing "time compressions" lines to TIMELINE whenever the count moves.
# Fails after COMPRESS_DEADLINE seconds.
wait_compressed() {
	python3 - "$MNT/.topicfs/status" "$DATA/topics/$1/0" "$1" "$2" "$3" \
		"$COMPRESS_DEADLINE" <<'EOF'
import glob, json, os, struct, sys, time
status, pdir, topic, want, out, limit = sys.argv[1:]
want, limit = int(want), float(limit)

def covered():
    n = 0
    for f in glob.glob(os.path.join(pdir, "*.zst")):
        try:
            size = os.path.getsize(f)
            with open(f, "rb") as fh:
                fh.seek(size - 48)
                n += struct.unpack_from("<Q", fh.read(48), 16)[0]
        except OSError:
            pass		# replaced meanwhile: the next sample sees it
    return n

end = time.time() + limit
last = None
with open(out, "a") as tl:
    while True:
        now = time.time()
        with open(status) as f:
            st = json.load(f)
        p = [t for t in st["topics"] if t["name"] == topic][0]["partitions"][0]
        if p["compressions"] != last:
            last = p["compressions"]
            tl.write(f"{now:.3f} {last}\n")
            tl.flush()
        if covered() >= want:
            sys.exit(0)
        if now > end:
            print(f"{p['compressed_segments']} of {p['segments'] - 1} sealed "
                  f"segments compressed after {limit:.0f} s", file=sys.stderr)
            sys.exit(1)
        time.sleep(0.02)
EOF
}

# make_topic NAME KEY=VALUE...: a topic with these settings.
make_topic() {
	local t=$1 kv
	shift
	mkdir "$MNT/$t" || return 1
	for kv in "$@"; do
		setfattr -n "user.topicfs.${kv%%=*}" -v "${kv#*=}" "$MNT/$t" || return 1
	done
}

# append TOPIC BYTES: web-log lines to TOPIC's partition 0; prints the
# generator's "lines N bytes B sum S seconds T".
append() {
	timeout -k 5 300 "$WEBLOG" -S "$SEED" -b "$2" -w "$WSIZE" "$MNT/$1/0" \
		2>"$DIR/weblog-$1.log" || {
		echo "weblog into $1 failed: $(tail -1 "$DIR/weblog-$1.log")" >&2
		return 1; }
	sed -n 's/^weblog: //p' "$DIR/weblog-$1.log" | head -1
}

# read_run NAME TOPIC READ_SIZE: one timed sequential read; prints MB/s and
# leaves the JSON in $DIR/reads/NAME.json.
read_run() {
	local out=$DIR/reads/$1.json
	mkdir -p "$DIR/reads"
	timeout -k 5 120 "$PERF" consume -q --json -r "$3" "$MNT/$2/0" \
		>"$out" 2>"$DIR/reads/$1.err" || {
		echo "read of $2 ($3 reads) failed: $(tail -1 "$DIR/reads/$1.err")" >&2
		return 1; }
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mb_per_sec"])' "$out"
}

# ---- the run ----------------------------------------------------------------------

say "work folder $DIR; $BYTES of web-log lines, $ROUNDS read rounds$([ "$QUICK" = 1 ] && echo ' (BENCH_QUICK)')"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# What is measured, taken now: the tree may change during the run.
TFS_BUILD="$("$TOPICFS" -V 2>/dev/null | head -1), binary of $(date -u -r "$TOPICFS" '+%Y-%m-%d %H:%M UTC'), tree at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
n=$(git -C "$ROOT" status --porcelain -- src include 2>/dev/null | grep -c .)
[ "${n:-0}" -gt 0 ] && TFS_BUILD="$TFS_BUILD with $n uncommitted file(s) in src/ and include/"
start_daemon || fail "$START_ERR"

main_run() {
	local g n ticks0 ticks1 tw0 tw1 tz0 tz1 r order sz t a b out
	make_topic raw segment.bytes=$SEG || { fail "cannot make topic raw"; return; }
	make_topic z segment.bytes=$SEG compression=zstd ||
		{ fail "cannot make topic z (compression=zstd)"; return; }
	put z_config "{\"compression\":$(jstr "$(tconf z compression)"),\"level\":$(tconf z compression.level),\"frame_bytes\":$(tconf z compression.frame.bytes),\"segment_bytes\":$(tconf z segment.bytes)}"

	# raw first, then z: the compactor works while z is being written,
	# as it would under a steady producer.
	tw0=$(now_s)
	g=$(append raw "$BYTES") || { fail "appending to raw failed"; return; }
	tw1=$(now_s)
	set -- $g	# lines N bytes B sum S seconds T
	n=$4
	put generator "{\"seed\":$SEED,\"lines\":$2,\"bytes\":$4,\"sum\":\"$6\",\"write_size\":\"$WSIZE\"}"
	put append_raw "{\"seconds\":$(awk -v a="$tw0" -v b="$tw1" 'BEGIN { print b - a }')}"
	say "raw: $n bytes in $2 lines appended"

	ticks0=$(compact_ticks)
	: >"$DIR/timeline-z.txt"
	wait_compressed z "$n" "$DIR/timeline-z.txt" 2>"$DIR/wait-z.err" &
	POLL_PID=$!
	tz0=$(now_s)
	g=$(append z "$BYTES") || { fail "appending to z failed"; return; }
	tz1=$(now_s)
	set -- $g
	[ "$4" = "$n" ] && [ "$6" = "$(sed -n 's/.*sum \([0-9a-f]*\).*/\1/p' "$DIR/weblog-raw.log")" ] ||
		{ fail "the generator gave z other bytes than raw ($g)"; return; }
	put append_z "{\"seconds\":$(awk -v a="$tz0" -v b="$tz1" 'BEGIN { print b - a }'),\"end\":$tz1}"
	# Seal the active segments too, so every byte of z is compressed
	# and the two files have the same segments.
	setfattr -n user.topicfs.segment.ms -v 1s "$MNT/raw" &&
		setfattr -n user.topicfs.segment.ms -v 1s "$MNT/z" ||
		{ fail "cannot set segment.ms"; return; }
	if ! wait "$POLL_PID"; then
		POLL_PID=
		fail "compression of z did not finish: $(tail -1 "$DIR/wait-z.err")"
		return
	fi
	POLL_PID=
	ticks1=$(compact_ticks)
	put compaction "{\"cpu_seconds\":$(awk -v a="$ticks0" -v b="$ticks1" -v t="$TICK" 'BEGIN { print (b - a) / t }'),\"timeline\":\"timeline-z.txt\"}"
	put z_footers "$(footers z)"
	put z_status "$(pstat z logical_bytes data_bytes disk_bytes segments compressed_segments compression_ratio |
		awk '{ printf "{\"logical_bytes\":%s,\"data_bytes\":%s,\"disk_bytes\":%s,\"segments\":%s,\"compressed_segments\":%s,\"compression_ratio\":%s}", $1, $2, $3, $4, $5, $6 }')"
	put raw_status "$(pstat raw logical_bytes data_bytes disk_bytes segments |
		awk '{ printf "{\"logical_bytes\":%s,\"data_bytes\":%s,\"disk_bytes\":%s,\"segments\":%s}", $1, $2, $3, $4 }')"
	put du "{\"raw\":$(du_bytes "$DATA/topics/raw/0"),\"z\":$(du_bytes "$DATA/topics/z/0")}"
	say "z: compressed ($(pstat z compressed_segments) segments, ratio $(pstat z compression_ratio))"

	# Read both back through the mount and check them against the
	# generator's checksum before timing anything.
	out=$(timeout -k 5 120 "$WEBLOG" --sum "$MNT/raw/0" "$MNT/z/0" 2>&1) ||
		{ fail "reading back for the checksum failed: $out"; return; }
	a=$(echo "$out" | awk 'NR==1 { print $3, $5 }')
	b=$(echo "$out" | awk 'NR==2 { print $3, $5 }')
	set -- $g
	put verify "{\"raw\":$(jstr "$a"),\"z\":$(jstr "$b"),\"expected\":$(jstr "$4 $6")}"
	if [ "$a" != "$4 $6" ] || [ "$b" != "$4 $6" ]; then
		fail "bytes read back differ: generator $4 bytes sum $6; raw $a; z $b"
		return
	fi
	say "read back: raw and z both give $4 bytes, sum $6"

	# Paired reads: in each round raw and z one after the other, the
	# order swapped every round.
	for r in $(seq "$ROUNDS"); do
		if [ $(( r % 2 )) = 1 ]; then order="raw z"; else order="z raw"; fi
		for sz in 1M 64K; do
			for t in $order; do
				local h0 h1 mb
				h0=$(fcache)
				mb=$(read_run "r$r-$sz-$t" "$t" "$sz") ||
					{ fail "read $t, $sz reads, round $r failed"; return; }
				h1=$(fcache)
				set -- $h0 $h1
				put read "{\"round\":$r,\"read_size\":\"$sz\",\"topic\":\"$t\",\"mb_per_sec\":$mb,\"cache_hits\":$(( $3 - $1 )),\"cache_misses\":$(( $4 - $2 ))}"
			done
		done
		say "read round $r of $ROUNDS done"
	done
	rmdir "$MNT/raw" "$MNT/z" 2>/dev/null
}

variant_run() {
	local lv=$1 fr=$2 t g ticks0 ticks1 rd mb i miss out
	t=v-l$lv-$fr
	make_topic "$t" segment.bytes=$VSEG compression=zstd \
		compression.level="$lv" compression.frame.bytes="$fr" ||
		{ fail "cannot make topic $t"; return 1; }
	ticks0=$(compact_ticks)
	g=$(append "$t" "$VBYTES") || { fail "appending to $t failed"; return 1; }
	set -- $g
	setfattr -n user.topicfs.segment.ms -v 1s "$MNT/$t"
	: >"$DIR/timeline-$t.txt"
	wait_compressed "$t" "$4" "$DIR/timeline-$t.txt" 2>"$DIR/wait-$t.err" ||
		{ fail "compression of $t did not finish: $(tail -1 "$DIR/wait-$t.err")"; return 1; }
	ticks1=$(compact_ticks)
	out=$(timeout -k 5 60 "$WEBLOG" --sum "$MNT/$t/0" 2>&1) ||
		{ fail "reading back $t failed: $out"; return 1; }
	[ "$(echo "$out" | awk '{ print $3, $5 }')" = "$4 $6" ] ||
		{ fail "$t read back differs: $out, expected $4 bytes sum $6"; return 1; }
	rd= miss=
	for i in 1 2 3; do
		set -- $(fcache)
		mb=$(read_run "$t-$i" "$t" 1M) || { fail "read of $t failed"; return 1; }
		rd="$rd${rd:+,}$mb"
		miss="$miss${miss:+,}$(( $(fcache | cut -d' ' -f2) - $2 ))"
	done
	set -- $g
	put variant "{\"level\":$lv,\"frame_setting\":$(tconf "$t" compression.frame.bytes),\"bytes\":$4,\"footers\":$(footers "$t"),\"cpu_seconds\":$(awk -v a="$ticks0" -v b="$ticks1" -v k="$TICK" 'BEGIN { print (b - a) / k }'),\"read_mb_per_sec\":[$rd],\"read_cache_misses\":[$miss]}"
	say "variant level $lv, frame $fr done"
	rmdir "$MNT/$t"
}

if [ "$STATUS" = ok ]; then
	main_run
fi
if [ "$STATUS" = ok ] && [ "$VARIANTS" = 1 ]; then
	for v in $VARIANT_LIST; do
		variant_run "${v%%:*}" "${v#*:}" || break
	done
fi
if [ -n "$TFS_PID" ]; then
	put frame_cache_end "$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["node"]["frame_cache"]))' "$MNT/.topicfs/status" 2>/dev/null || echo null)"
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
stop_daemon
[ -n "$TFS_EXIT" ] && [ "$TFS_EXIT" != 0 ] && fail "topicfs exited with status $TFS_EXIT (log: $DIR/topicfs.log)"
rm -rf "$DATA"

# ---- result.json --------------------------------------------------------------------

python3 - "$DIR" "$STATUS" "$REASON" "$QUICK" "$BYTES" "$VBYTES" "$VSEG" \
	"$ROUNDS" "$T0" "$(now_s)" "${TFS_EXIT:-}" "$LOAD_BEFORE" "$LOAD_AFTER" \
	"$TFS_CMD" "$SEG" "$TFS_BUILD" <<'EOF'
import json, os, re, statistics, sys
(d, status, reason, quick, size, vsize, vseg, rounds, t0, t1, tfs_exit,
 load0, load1, tfs_cmd, seg, tfs_build) = sys.argv[1:]
facts = {}
reads, variants = [], []
for line in open(os.path.join(d, "steps.jsonl")):
    f = json.loads(line)
    if f["k"] == "read":
        reads.append(f["v"])
    elif f["k"] == "variant":
        variants.append(f["v"])
    else:
        facts[f["k"]] = f["v"]
med = statistics.median
res = {"status": status, "reason": reason, "quick": quick == "1",
       "size": size, "rounds": int(rounds),
       "seconds": round(float(t1) - float(t0), 1),
       "loadavg_before": load0, "loadavg_after": load1,
       "topicfs_command": tfs_cmd, "topicfs_exit": tfs_exit,
       "topicfs_build": tfs_build,
       "segment_bytes_setting": seg,
       "generator": facts.get("generator"),
       "z_config": facts.get("z_config"),
       "warm_cache": True}
gen = facts.get("generator") or {}
if "z_status" in facts:
    zs, rs, fo, du = (facts["z_status"], facts["raw_status"],
                      facts["z_footers"], facts["du"])
    res["ratio"] = {
        "status_ratio": zs["compression_ratio"],
        "logical_bytes": zs["logical_bytes"], "data_bytes": zs["data_bytes"],
        "z_disk_bytes": zs["disk_bytes"], "raw_disk_bytes": rs["disk_bytes"],
        "segments": zs["segments"],
        "compressed_segments": zs["compressed_segments"],
        "zst_raw_bytes": fo["raw_bytes"], "zst_bytes": fo["zst_bytes"],
        "zst_ratio": fo["raw_bytes"] / fo["zst_bytes"],
        "frames": fo["frames"],
        "avg_frame_bytes": fo["raw_bytes"] / fo["frames"],
        "du_raw": du["raw"], "du_z": du["z"], "du_ratio": du["raw"] / du["z"],
    }
if "compaction" in facts and "z_footers" in facts:
    c = facts["compaction"]
    raw = facts["z_footers"]["raw_bytes"]
    segs = facts["z_footers"]["segments"]
    tl = []
    for line in open(os.path.join(d, c["timeline"])):
        t, n = line.split()
        tl.append((float(t), int(n)))
    comp = {"segments": segs, "bytes": raw, "cpu_seconds": c["cpu_seconds"],
            "mb_per_cpu_second": raw / 1e6 / c["cpu_seconds"]
            if c["cpu_seconds"] else None}
    # Wall: the time each .zst took to write (no birth time: no figure).
    ws = facts["z_footers"]["write_seconds"]
    if ws and None not in ws and sum(ws) > 0:
        comp["wall_seconds"] = sum(ws)
        comp["wall_mb_per_sec"] = raw / 1e6 / sum(ws)
    # When the compactor got there: the segments done while z was still
    # being written, and how long after the last write the last was done.
    if tl:
        end = facts["append_z"]["end"]
        comp["during_write_segments"] = max(
            [n for t, n in tl if t <= end] or [0])
        comp["done_after_write_seconds"] = tl[-1][0] - end
    res["compaction"] = comp
if "append_z" in facts:
    res["append_seconds"] = {"raw": facts["append_raw"]["seconds"],
                             "z": facts["append_z"]["seconds"]}
res["verify"] = facts.get("verify")
out_reads = {}
for sz in ("1M", "64K"):
    rr = [r for r in reads if r["read_size"] == sz]
    if not rr:
        continue
    by = {}
    for r in rr:
        by.setdefault(r["round"], {})[r["topic"]] = r
    raw_v = [r["mb_per_sec"] for r in rr if r["topic"] == "raw"]
    z_v = [r["mb_per_sec"] for r in rr if r["topic"] == "z"]
    ratios = [v["z"]["mb_per_sec"] / v["raw"]["mb_per_sec"]
              for v in by.values() if "z" in v and "raw" in v]
    zr = [r for r in rr if r["topic"] == "z"]
    out_reads[sz] = {
        "raw": {"median": med(raw_v), "min": min(raw_v), "max": max(raw_v),
                "values": raw_v},
        "z": {"median": med(z_v), "min": min(z_v), "max": max(z_v),
              "values": z_v},
        "z_over_raw": {"median": med(ratios), "values": ratios},
        "z_cache_hits": med([r["cache_hits"] for r in zr]),
        "z_cache_misses": med([r["cache_misses"] for r in zr]),
        "rounds": len(by),
    }
res["reads"] = out_reads
vo = []
for v in variants:
    fo = v["footers"]
    vo.append({"level": v["level"], "frame_setting": v["frame_setting"],
               "bytes": v["bytes"], "ratio": fo["raw_bytes"] / fo["zst_bytes"],
               "frames": fo["frames"],
               "avg_frame_bytes": fo["raw_bytes"] / fo["frames"],
               "cpu_seconds": v["cpu_seconds"],
               "wall_seconds": sum(fo["write_seconds"])
               if None not in fo["write_seconds"] else None,
               "wall_mb_per_sec": fo["raw_bytes"] / 1e6 /
               sum(fo["write_seconds"])
               if None not in fo["write_seconds"] and
               sum(fo["write_seconds"]) > 0 else None,
               "mb_per_cpu_second": fo["raw_bytes"] / 1e6 / v["cpu_seconds"]
               if v["cpu_seconds"] else None,
               "read_mb_per_sec": med(v["read_mb_per_sec"]),
               "read_values": v["read_mb_per_sec"],
               "read_cache_misses": v.get("read_cache_misses")})
if vo:
    res["variants"] = {"size": vsize, "segment_bytes_setting": vseg,
                       "rows": vo}
res["frame_cache_end"] = facts.get("frame_cache_end")
warn = [l.rstrip("\n")[:300] for l in open(os.path.join(d, "topicfs.log"),
                                            errors="replace")
        if re.search(r" (warn|error): ", l)]
res["daemon_warnings"] = warn[:20]
res["daemon_warning_count"] = len(warn)
with open(os.path.join(d, "result.json"), "w") as f:
    json.dump(res, f, indent=1)
    f.write("\n")

# A summary for the terminal.
p = lambda *a: print("zstd:", *a, file=sys.stderr)
if "ratio" in res:
    r = res["ratio"]
    p(f"ratio {r['status_ratio']:.2f} (status), {r['zst_ratio']:.2f} (.zst "
      f"footers, {r['frames']} frames of {r['avg_frame_bytes'] / 1024:.0f} KiB "
      f"on average), {r['du_ratio']:.2f} (du)")
if "compaction" in res:
    c = res["compaction"]
    p(f"compaction {c['bytes'] / 1e6:.0f} MB in {c['cpu_seconds']:.2f} CPU s: "
      f"{c['mb_per_cpu_second'] or 0:.0f} MB/s per CPU second; wall "
      f"{c.get('wall_mb_per_sec') or 0:.0f} MB/s ({c.get('wall_seconds') or 0:.2f} s "
      f"writing .zst files); all done {c.get('done_after_write_seconds', 0):.1f} s "
      f"after the last write")
for sz, v in out_reads.items():
    p(f"read {sz}: raw {v['raw']['median']:.0f} MB/s, z {v['z']['median']:.0f} "
      f"MB/s, z/raw {v['z_over_raw']['median']:.2f}; per z read "
      f"{v['z_cache_misses']} frame cache misses, {v['z_cache_hits']} hits")
for v in vo:
    p(f"level {v['level']}, frame {v['frame_setting'] // 1024} KiB "
      f"(avg {v['avg_frame_bytes'] / 1024:.0f} KiB): ratio {v['ratio']:.2f}, "
      f"{v['mb_per_cpu_second'] or 0:.0f} MB/s per CPU s, read "
      f"{v['read_mb_per_sec']:.0f} MB/s")
p(f"{status}{': ' + reason if reason else ''}; {res['seconds']} s; "
  f"{len(warn)} warning(s) in the daemon log")
EOF
[ "$STATUS" = ok ] && exit 0
exit 1
