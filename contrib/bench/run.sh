#!/bin/bash
# contrib/bench/run.sh - the side-by-side benchmark behind `make bench`.
#
# Runs the same workloads against four systems in one go and writes a
# Markdown table, a JSON file and PNG plots under bench/results/ (see
# docs/PERFORMANCE.md for what each workload and system is):
#
#   topicfs         build/topicfs -f, data and mount point under bench/work
#   passthrough_ll  libfuse's example, built here from libfuse3-dev, with the
#                   options that give topicfs's file semantics (see OPTIONS)
#   native          a directory on the same disk (bench/work is on it)
#   redis           a private Redis 7 server, Streams XADD, AOF everysec
#
# Runs are paired: each round runs every workload once on every system, in
# an order rotated each round (A B C, B C A, ...), and the report gives the
# median over rounds and the median of the per-round ratios.
#
# One more workload, `zstd`, is topicfs alone: compressed against raw
# segments on web-log lines (ratio, compaction speed, read speed), run
# once after the rounds by contrib/bench/compression.sh with a daemon of
# its own (see docs/PERFORMANCE.md, "Compressed segments").
#
# Environment:
#   BENCH_QUICK=1        small sizes, about 1.5 minutes in all (a smoke run)
#   BENCH_ROUNDS=N       rounds (default 5; 3 with BENCH_QUICK)
#   BENCH_SYSTEMS="..."  subset of: topicfs passthrough_ll native redis
#   BENCH_WORKLOADS="..." subset of the workload names below (ALL_WORKLOADS)
#   BENCH_TOPICFS_ARGS   extra arguments for build/topicfs (e.g. "-o k=v")
#   BENCH_COLD=1         evict the file from the page cache (per file, with
#                        posix_fadvise) before the read workload
#   BENCH_DEADLINE=SECS  start no round that would end after SECS (540)
#   BENCH_RESULTS=DIR    write the results there instead of bench/results
#   B=build              the build folder (as in the Makefile)
#
# Exit status: 0 when every selected run succeeded, 1 when any failed (the
# results are written either way and name what failed and why), 2 when the
# bench could not start.
#
# This script starts its daemons itself and stops exactly those, by pid;
# FUSE mounts are unmounted with fusermount3 -u (then -u -z if busy).

set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
PERF=$ROOT/$B/topicfs-perf
TOPICFS=$ROOT/$B/topicfs
PT_SRC=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
BIN=$ROOT/bench/work/bin
PT=$BIN/passthrough_ll
STAMP=$(date -u +%Y%m%d-%H%M%S)
WORK=$ROOT/bench/work/run-$STAMP
RAW=$WORK/raw
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results}
T0=$(date +%s)

QUICK=${BENCH_QUICK:-0}
ROUNDS=${BENCH_ROUNDS:-5}
DEADLINE=${BENCH_DEADLINE:-540}
SYSTEMS=${BENCH_SYSTEMS:-"topicfs passthrough_ll native redis"}
ALL_WORKLOADS="append-128k read-1g append-1rec append-4w fsync-1m follow-1 follow-100 zstd"
WORKLOADS=${BENCH_WORKLOADS:-$ALL_WORKLOADS}
# The workloads run in rounds on every system (all but zstd).
SIDE_WORKLOADS=$(for w in $WORKLOADS; do [ "$w" = zstd ] || printf '%s ' "$w"; done)
COLD=${BENCH_COLD:-0}

# The passthrough_ll options: direct_io on every open and zero attribute
# timeouts (cache=never), as topicfs must have for growing files; no
# writeback cache; one /dev/fuse clone per thread (clone_fd).
PT_OPTS="cache=never,clone_fd"

RSIZE=200			# bytes per record, newline included
if [ "$QUICK" = 1 ]; then
	BIG=128M; N1=50k; N4=100k; FSYNC_BYTES=64M; NFOLLOW=500
	ROUNDS=${BENCH_ROUNDS:-3}
	REDIS_N_BATCH=300000; REDIS_N_1=20000; REDIS_N_4=40000
	NEED_GB=1
	ZSTD_RESERVE=40; ZSTD_LIMIT=150	# seconds: expected at most, killed after
else
	BIG=1G; N1=200k; N4=200k; FSYNC_BYTES=256M; NFOLLOW=2000
	REDIS_N_BATCH=2000000; REDIS_N_1=100000; REDIS_N_4=200000
	NEED_GB=6
	ZSTD_RESERVE=75; ZSTD_LIMIT=300
fi
FOLLOW_RATE=1000

# ---- output helpers ---------------------------------------------------------

. "$(dirname "$0")/lib.sh"
say() { printf 'bench: %s\n' "$*" >&2; }

shout() {
	printf '\n' >&2
	printf '#%.0s' $(seq 72) >&2; printf '\n' >&2
	for l in "$@"; do printf '## %s\n' "$l" >&2; done
	printf '#%.0s' $(seq 72) >&2; printf '\n\n' >&2
}

jstr() {			# a JSON string literal
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/ }
	s=${s//$'\t'/ }
	printf '"%s"' "$s"
}

# record ROUND WORKLOAD SYSTEM STATUS REASON RESULT_FILE KIND WALL CMD
record() {
	printf '{"round":%s,"workload":%s,"system":%s,"status":%s,"reason":%s,"result":%s,"kind":%s,"wall_seconds":%s,"command":%s}\n' \
		"$1" "$(jstr "$2")" "$(jstr "$3")" "$(jstr "$4")" \
		"$(jstr "$5")" "$(jstr "$6")" "$(jstr "$7")" "$8" \
		"$(jstr "$9")" >>"$WORK/runs.jsonl"
}

last_err() {			# the last non-progress line of a log
	grep -v '^\(produce\|consume\|follow\) ' "$1" 2>/dev/null |
		grep -v '^$' | tail -1 | cut -c1-300
}

now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

json_get() {			# json_get FILE KEY: a top-level value
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" 2>/dev/null
}

# ---- set-up checks ----------------------------------------------------------

has() { case " $SYSTEMS " in *" $1 "*) return 0 ;; esac; return 1; }
wants() { case " $WORKLOADS " in *" $1 "*) return 0 ;; esac; return 1; }

for s in $SYSTEMS; do
	case $s in topicfs|passthrough_ll|native|redis) ;;
	*) say "unknown system '$s' in BENCH_SYSTEMS"; exit 2 ;; esac
done
for w in $WORKLOADS; do
	case " $ALL_WORKLOADS " in *" $w "*) ;;
	*) say "unknown workload '$w' in BENCH_WORKLOADS"; exit 2 ;; esac
done
case $ROUNDS in ''|*[!0-9]*|0) say "BENCH_ROUNDS must be a positive number"; exit 2 ;; esac

if [ ! -x "$PERF" ]; then
	say "building $B/topicfs-perf"
	make -C "$ROOT" --no-print-directory "$B/topicfs-perf" >&2 || {
		say "cannot build $B/topicfs-perf"; exit 2; }
fi
for t in python3 gnuplot fusermount3 timeout sync; do
	command -v $t >/dev/null || { say "missing $t: run contrib/install-deps.sh bench"; exit 2; }
done
if has redis; then
	for t in redis-server redis-benchmark redis-cli; do
		command -v $t >/dev/null || { say "missing $t: run contrib/install-deps.sh bench"; exit 2; }
	done
fi

mkdir -p "$RAW" "$RESULTS" "$BIN"
: >"$WORK/runs.jsonl"
avail_gb=$(df -P -k "$WORK" | awk 'NR==2 { printf "%d", $4 / 1048576 }')
if [ "$avail_gb" -lt "$NEED_GB" ]; then
	say "only ${avail_gb} GiB free under $WORK; this bench needs ${NEED_GB} GiB"
	exit 2
fi

# ---- daemons: start, wait, stop ---------------------------------------------

PT_PID='' TFS_PID='' REDIS_PID=''
PT_MNT=$WORK/pt-mnt
TFS_MNT=$WORK/tfs-mnt
TFS_STATUS=ok			# or the reason the topicfs leg failed
PT_STATUS=ok


# wait_mount MNT PID DEADLINE_SECONDS: 0 when MNT answers, 1 otherwise.
wait_mount() {
	local mnt=$1 pid=$2 end=$(( $(date +%s) + $3 ))
	while [ "$(date +%s)" -le "$end" ]; do
		if is_mounted "$mnt" && timeout 5 stat "$mnt" >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# stop_fuse MNT PID NAME: unmount, wait for the daemon, record its status.
stop_fuse() {
	local mnt=$1 pid=$2 name=$3 rc
	[ -n "$pid" ] || return 0
	reap_fuse "$mnt" "$pid" "$name"
	rc=$REAPED_RC
	echo "$rc" >"$WORK/$name.exit"
	[ "$rc" = 0 ] || say "$name exited with status $rc (log: $WORK/$name.log)"
}

build_passthrough() {
	if [ ! -x "$PT" ] || [ "$PT_SRC" -nt "$PT" ]; then
		[ -r "$PT_SRC" ] || { echo "no $PT_SRC (install libfuse3-dev)"; return 1; }
		# shellcheck disable=SC2046
		gcc -O2 -Wall -I"$(dirname "$PT_SRC")" $(pkg-config fuse3 --cflags) \
			-o "$PT" "$PT_SRC" $(pkg-config fuse3 --libs) >"$WORK/pt-build.log" 2>&1 ||
			{ echo "cannot build passthrough_ll: $(tail -1 "$WORK/pt-build.log")"; return 1; }
	fi
	return 0
}

start_passthrough() {
	local msg
	msg=$(build_passthrough) || { PT_STATUS=$msg; return 1; }
	mkdir -p "$WORK/pt-src" "$PT_MNT"
	"$PT" -f -o "source=$WORK/pt-src,$PT_OPTS" "$PT_MNT" >"$WORK/passthrough_ll.log" 2>&1 &
	PT_PID=$!
	if ! wait_mount "$PT_MNT" "$PT_PID" 10; then
		PT_STATUS="passthrough_ll did not mount within 10 s: $(tail -1 "$WORK/passthrough_ll.log")"
		return 1
	fi
	return 0
}

TFS_BUILD="no binary"
start_topicfs() {
	if [ ! -x "$TOPICFS" ]; then
		TFS_STATUS="$B/topicfs not found (not built yet? run make all)"
		return 1
	fi
	# What is measured, taken now: the tree may change during the run.
	local untracked
	untracked=$(git -C "$ROOT" status --porcelain -- src include 2>/dev/null | grep -c .)
	TFS_BUILD="$("$TOPICFS" -V 2>/dev/null | head -1), binary of $(date -u -r "$TOPICFS" '+%Y-%m-%d %H:%M UTC'), tree at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
	[ "${untracked:-0}" -gt 0 ] &&
		TFS_BUILD="$TFS_BUILD with $untracked uncommitted file(s) in src/ and include/"
	mkdir -p "$WORK/tfs-data" "$TFS_MNT"
	# shellcheck disable=SC2086
	"$TOPICFS" -f ${BENCH_TOPICFS_ARGS:-} "$WORK/tfs-data" "$TFS_MNT" \
		>"$WORK/topicfs.log" 2>&1 &
	TFS_PID=$!
	if ! wait_mount "$TFS_MNT" "$TFS_PID" 15; then
		if kill -0 "$TFS_PID" 2>/dev/null; then
			TFS_STATUS="$B/topicfs did not mount within 15 s"
		else
			wait "$TFS_PID"
			TFS_STATUS="$B/topicfs exited with status $? before mounting"
		fi
		TFS_STATUS="$TFS_STATUS: $(tail -1 "$WORK/topicfs.log" 2>/dev/null)"
		return 1
	fi
	return 0
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

REDIS_PORT=
start_redis() {			# a fresh server and folder for every run
	local dir=$WORK/redis i
	rm -rf "$dir"; mkdir -p "$dir"
	REDIS_PORT=$(free_port)
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" \
		--appendonly yes --appendfsync everysec --save '' \
		--daemonize no --protected-mode no --logfile "$dir/redis.log" &
	REDIS_PID=$!
	for i in $(seq 100); do
		redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
		kill -0 "$REDIS_PID" 2>/dev/null || break
		sleep 0.05
	done
	return 1
}

stop_redis() {
	[ -n "$REDIS_PID" ] || return 0
	redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1
	for i in $(seq 50); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$REDIS_PID" 2>/dev/null && kill -KILL "$REDIS_PID" 2>/dev/null
	wait "$REDIS_PID" 2>/dev/null
	REDIS_PID=
	rm -rf "$WORK/redis"
}

cleanup() {
	stop_redis
	stop_fuse "$TFS_MNT" "$TFS_PID" topicfs
	stop_fuse "$PT_MNT" "$PT_PID" passthrough_ll
	TFS_PID='' PT_PID=''
	# Data is scratch; logs and raw results stay in $WORK.
	rm -rf "$WORK/native" "$WORK/pt-src" "$WORK/tfs-data" 2>/dev/null
}
trap 'cleanup' EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ---- where each system keeps a topic -----------------------------------------

# topic_dir SYSTEM TOPIC: the folder holding the topic's partition files.
topic_dir() {
	case $1 in
	topicfs) echo "$TFS_MNT/$2" ;;
	passthrough_ll) echo "$PT_MNT/$2" ;;
	native) echo "$WORK/native/$2" ;;
	esac
}

# Where the partition's bytes really live, for BENCH_COLD eviction.
backing_files() {
	case $1 in
	topicfs) find "$WORK/tfs-data" -type f 2>/dev/null ;;
	passthrough_ll) echo "$WORK/pt-src/$2/0" ;;
	native) echo "$WORK/native/$2/0" ;;
	esac
}

evict() {			# drop these files' pages only, not the whole cache
	[ $# -gt 0 ] || return 0
	python3 - "$@" <<'EOF'
import os, sys
for p in sys.argv[1:]:
    try:
        fd = os.open(p, os.O_RDONLY)
    except OSError:
        continue
    os.fdatasync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
EOF
}

make_topic() {			# make_topic SYSTEM TOPIC -> prints dir or fails
	local d
	d=$(topic_dir "$1" "$2")
	mkdir "$d" 2>"$WORK/mkdir.err" || {
		echo "mkdir $d: $(tail -1 "$WORK/mkdir.err")"; return 1; }
	echo "$d"
}

drop_topic() {
	local d
	d=$(topic_dir "$1" "$2")
	[ -e "$d" ] || return 0
	if [ "$1" = topicfs ]; then
		# rmdir deletes a topic (delete.topic.enable, on by default);
		# partitions cannot be unlinked.  Segment files may outlive
		# the topic for a while, so drop their pages: every system
		# then starts its next run with the same memory free.
		rmdir "$d" 2>/dev/null ||
			say "topicfs: rmdir $d failed; its data stays until the end"
		# shellcheck disable=SC2046
		evict $(find "$WORK/tfs-data" -type f 2>/dev/null)
	else
		rm -rf "$d" 2>/dev/null || true
	fi
}

system_down() {			# prints why a system cannot run now, if so
	case $1 in
	topicfs)
		[ "$TFS_STATUS" = ok ] || { echo "$TFS_STATUS"; return 0; }
		kill -0 "$TFS_PID" 2>/dev/null || {
			TFS_STATUS="topicfs daemon exited during the bench (log: $WORK/topicfs.log)"
			echo "$TFS_STATUS"; return 0; }
		;;
	passthrough_ll)
		[ "$PT_STATUS" = ok ] || { echo "$PT_STATUS"; return 0; }
		kill -0 "$PT_PID" 2>/dev/null || {
			PT_STATUS="passthrough_ll exited during the bench"
			echo "$PT_STATUS"; return 0; }
		;;
	esac
	return 1
}

# ---- one run -------------------------------------------------------------------

# perf_run ROUND WORKLOAD SYSTEM LIMIT_SECONDS ARGS...: runs topicfs-perf
# with --json and records the outcome.  Returns 0 on success; the result
# file is left in $LAST_OUT.
LAST_OUT=
perf_run() {
	local round=$1 wl=$2 sys=$3 limit=$4 out log t1 t2 rc reason
	shift 4
	out=$RAW/r$round-$wl-$sys.json
	log=$RAW/r$round-$wl-$sys.log
	LAST_OUT=$out
	t1=$(now_s)
	timeout -k 5 "$limit" "$PERF" "$@" --json -q >"$out" 2>"$log"
	rc=$?
	t2=$(now_s)
	if [ $rc -eq 0 ]; then
		record "$round" "$wl" "$sys" ok "" "$out" perf \
			"$(elapsed "$t1" "$t2")" "topicfs-perf $*"
		return 0
	fi
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		reason="no result within ${limit} s (killed)"
	else
		reason="exit $rc: $(last_err "$log")"
	fi
	say "$wl on $sys, round $round: FAILED: $reason"
	record "$round" "$wl" "$sys" failed "$reason" "$out" perf \
		"$(elapsed "$t1" "$t2")" "topicfs-perf $*"
	return 1
}

# verify_run ROUND WORKLOAD SYSTEM FILE ARGS...: checks the file a run wrote;
# a failure turns that run into a failed one.
verify_run() {
	local round=$1 wl=$2 sys=$3 file=$4 log
	shift 4
	log=$RAW/r$round-$wl-$sys.verify
	if ! timeout -k 5 300 "$PERF" verify -q -s $RSIZE "$@" "$file" >"$log" 2>&1; then
		say "$wl on $sys, round $round: data check FAILED: $(head -1 "$log")"
		# The run's line becomes a failure: a fast but lossy system
		# must not get a number.
		grep -v "\"round\":$round,\"workload\":\"$wl\",\"system\":\"$sys\"," \
			"$WORK/runs.jsonl" >"$WORK/runs.tmp"
		mv "$WORK/runs.tmp" "$WORK/runs.jsonl"
		record "$round" "$wl" "$sys" failed \
			"data check failed: $(grep -m1 'topicfs-perf:' "$log" | cut -c1-200)" \
			"$log" verify 0 "topicfs-perf verify $*"
		return 1
	fi
	return 0
}

fail_run() {			# fail_run ROUND WORKLOAD SYSTEM REASON
	say "$2 on $3, round $1: FAILED: $4"
	record "$1" "$2" "$3" failed "$4" "" none 0 ""
}

redis_run() {			# redis_run ROUND WORKLOAD CLIENTS PIPELINE N
	local round=$1 wl=$2 c=$3 p=$4 n=$5 out log t1 t2 val cmd
	out=$RAW/r$round-$wl-redis.csv
	log=$RAW/r$round-$wl-redis.log
	if ! start_redis; then
		fail_run "$round" "$wl" redis "redis-server did not start: $(tail -1 "$WORK/redis/redis.log" 2>/dev/null)"
		stop_redis
		return 1
	fi
	val=$(python3 -c "a='ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'; print((a*4)[:$RSIZE])")
	cmd="redis-benchmark -c $c -P $p -n $n --csv XADD bench '*' v <${RSIZE}-byte value>"
	t1=$(now_s)
	timeout -k 5 120 redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$c" -P "$p" \
		-n "$n" --csv XADD bench '*' v "$val" >"$out" 2>"$log"
	local rc=$?
	t2=$(now_s)
	local len
	len=$(redis-cli -p "$REDIS_PORT" xlen bench 2>/dev/null)
	stop_redis
	if [ $rc -ne 0 ] || ! grep -q '^"XADD' "$out"; then
		fail_run "$round" "$wl" redis "redis-benchmark exit $rc: $(tail -1 "$log")"
		return 1
	fi
	# redis-benchmark rounds the count up to whole pipelines per client.
	if ! [ "${len:-0}" -ge "$n" ] 2>/dev/null ||
	   [ "$len" -gt $(( n + c * p )) ]; then
		fail_run "$round" "$wl" redis "stream has ${len:-no} entries, expected $n"
		return 1
	fi
	record "$round" "$wl" redis ok "" "$out" redis-csv \
		"$(elapsed "$t1" "$t2")" "$cmd"
}

# ---- workloads -------------------------------------------------------------------

# Each fs workload: fresh topic, sync the disk so no earlier run's dirty
# pages are flushed during this one, run, check the data, drop the topic.

W_BIG_ARGS="produce --bytes $BIG -s $RSIZE -w 128K -d 20"
W_1REC_ARGS="produce -n $N1 -s $RSIZE -d 10"
W_4W_ARGS="produce -n $N4 -s $RSIZE -W 4 -d 10"
W_FSYNC_ARGS="produce --bytes $FSYNC_BYTES -s $RSIZE -w 128K --fsync-bytes 1M -d 15"
W_READ_ARGS="consume -r 1M -s $RSIZE -d 20"
W_FOLLOW_ARGS="consume --follow -n $NFOLLOW -s $RSIZE --rate $FOLLOW_RATE --timeout 20"

produce_wl() {			# produce_wl ROUND WL SYS VERIFY_ARGS -- ARGS
	local round=$1 wl=$2 sys=$3 vargs=$4 why d topic n
	shift 5
	if why=$(system_down "$sys"); then fail_run "$round" "$wl" "$sys" "$why"; return; fi
	topic=b$round-$wl
	d=$(make_topic "$sys" "$topic") || { fail_run "$round" "$wl" "$sys" "$d"; return; }
	sync -f "$WORK"
	# shellcheck disable=SC2086
	if perf_run "$round" "$wl" "$sys" 60 "$@" "$d/0"; then
		n=$(json_get "$LAST_OUT" records)
		verify_run "$round" "$wl" "$sys" "$d/0" --records "$n" $vargs
	fi
	[ "$wl" = append-128k ] || drop_topic "$sys" "$topic"
}

read_wl() {
	local round=$1 sys=$2 why d
	if why=$(system_down "$sys"); then fail_run "$round" read-1g "$sys" "$why"; return; fi
	d=$(topic_dir "$sys" "b$round-append-128k")
	if [ ! -s "$d/0" ]; then
		fail_run "$round" read-1g "$sys" "nothing to read: the append-128k run of this round wrote no file"
		return
	fi
	# shellcheck disable=SC2046
	[ "$COLD" = 1 ] && evict $(backing_files "$sys" "b$round-append-128k")
	# shellcheck disable=SC2086
	perf_run "$round" read-1g "$sys" 60 $W_READ_ARGS "$d/0"
}

follow_wl() {			# follow_wl ROUND WL SYS FOLLOWERS
	local round=$1 wl=$2 sys=$3 nf=$4 why d topic ffile wait
	if why=$(system_down "$sys"); then fail_run "$round" "$wl" "$sys" "$why"; return; fi
	topic=b$round-$wl
	d=$(make_topic "$sys" "$topic") || { fail_run "$round" "$wl" "$sys" "$d"; return; }
	if [ "$sys" = topicfs ]; then
		ffile=$d/.follow/0; wait=block
	else
		# No blocking follow file: wait with inotify, which fires for
		# writes made through this mount (and on local files).
		ffile=$d/0; wait=inotify
	fi
	# shellcheck disable=SC2086
	perf_run "$round" "$wl" "$sys" 45 $W_FOLLOW_ARGS -F "$nf" --wait $wait \
		--append-to "$d/0" "$ffile" &&
		verify_run "$round" "$wl" "$sys" "$d/0" --records "$NFOLLOW"
	drop_topic "$sys" "$topic"
}

# rotate N WORDS...: the words rotated left by N.
rotate() {
	local n=$1; shift
	local a=("$@") i k
	k=${#a[@]}
	for ((i = 0; i < k; i++)); do printf '%s ' "${a[(i + n) % k]}"; done
}

fs_systems() {
	local s out=
	for s in $SYSTEMS; do [ "$s" = redis ] || out="$out $s"; done
	echo $out
}

run_round() {
	local r=$1 s order fss
	fss=$(fs_systems)
	# shellcheck disable=SC2086
	order=$(rotate $(( r - 1 )) $SYSTEMS)
	# shellcheck disable=SC2086
	local forder
	forder=$(rotate $(( r - 1 )) $fss)
	say "round $r of $ROUNDS (order: $order)"

	if wants append-128k || wants read-1g; then
		# Each system writes, checks, reads and deletes its file before
		# the next one writes: on these VMs, page cache allocated
		# beyond what was just freed costs a host fault per page (about
		# 10x slower writes), so a file kept alive would slow the next
		# system's run (see docs/PERFORMANCE.md).
		for s in $order; do
			case $s in
			redis) wants append-128k &&
				redis_run "$r" append-128k 8 64 $REDIS_N_BATCH ;;
			*) produce_wl "$r" append-128k "$s" "" -- $W_BIG_ARGS
			   wants read-1g && read_wl "$r" "$s"
			   drop_topic "$s" "b$r-append-128k" ;;
			esac
		done
		if ! wants append-128k; then
			# The file was only the read workload's input.
			grep -v "\"workload\":\"append-128k\"" "$WORK/runs.jsonl" >"$WORK/runs.tmp"
			mv "$WORK/runs.tmp" "$WORK/runs.jsonl"
		fi
	fi
	if wants append-1rec; then
		for s in $order; do
			case $s in
			redis) redis_run "$r" append-1rec 1 1 $REDIS_N_1 ;;
			*) produce_wl "$r" append-1rec "$s" "" -- $W_1REC_ARGS ;;
			esac
		done
	fi
	if wants append-4w; then
		for s in $order; do
			case $s in
			redis) redis_run "$r" append-4w 4 1 $REDIS_N_4 ;;
			*) produce_wl "$r" append-4w "$s" "--writers 4" -- $W_4W_ARGS ;;
			esac
		done
	fi
	if wants fsync-1m; then
		for s in $forder; do
			produce_wl "$r" fsync-1m "$s" "" -- $W_FSYNC_ARGS
		done
	fi
	if wants follow-1; then
		for s in $forder; do follow_wl "$r" follow-1 "$s" 1; done
	fi
	if wants follow-100; then
		for s in $forder; do follow_wl "$r" follow-100 "$s" 100; done
	fi
}

# ---- the zstd workload -------------------------------------------------------------

ZSTD_CMD="contrib/bench/compression.sh DIR$([ "$QUICK" = 1 ] && echo ' (BENCH_QUICK=1)')"
run_zstd() {			# compression.sh, once, with its own daemon
	local out=$WORK/zstd t1 t2 rc reason
	if ! has topicfs; then
		say "zstd: skipped (topicfs is not in BENCH_SYSTEMS)"
		return
	fi
	say "zstd: compressed against raw segments (contrib/bench/compression.sh, log: $WORK/zstd.log)"
	t1=$(now_s)
	BENCH_QUICK=$QUICK B=$B timeout -k 10 "$ZSTD_LIMIT" \
		"$ROOT/contrib/bench/compression.sh" "$out" 2>&1 >/dev/null |
		tee "$WORK/zstd.log" >&2
	rc=${PIPESTATUS[0]}
	t2=$(now_s)
	if [ "$rc" = 0 ] && [ -s "$out/result.json" ]; then
		record 0 zstd topicfs ok "" "$out/result.json" compression \
			"$(elapsed "$t1" "$t2")" "$ZSTD_CMD"
		return
	fi
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		reason="no result within ${ZSTD_LIMIT} s (killed)"
	else
		reason=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["reason"])' \
			"$out/result.json" 2>/dev/null)
		[ -n "$reason" ] || reason="exit $rc: $(tail -1 "$WORK/zstd.log")"
	fi
	say "zstd: FAILED: $reason"
	record 0 zstd topicfs failed "$reason" "$out/result.json" compression \
		"$(elapsed "$t1" "$t2")" "$ZSTD_CMD"
}

# ---- main ------------------------------------------------------------------------

say "results go to $RESULTS (raw runs and logs: $WORK)"
say "systems: $SYSTEMS; workloads: $WORKLOADS; rounds: $ROUNDS$([ "$QUICK" = 1 ] && echo ' (BENCH_QUICK)')"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# Only zstd selected: no side-by-side daemons, warm-up or rounds.
[ -n "$SIDE_WORKLOADS" ] || ROUNDS=0
if has topicfs && [ -n "$SIDE_WORKLOADS" ]; then
	if start_topicfs; then
		say "topicfs mounted at $TFS_MNT (pid $TFS_PID)"
	else
		shout "topicfs leg FAILED: $TFS_STATUS" \
		      "Every topicfs row is marked FAILED in the results." \
		      "Log: $WORK/topicfs.log"
	fi
fi
if has passthrough_ll && [ -n "$SIDE_WORKLOADS" ]; then
	if start_passthrough; then
		say "passthrough_ll mounted at $PT_MNT (pid $PT_PID, -o source=...,$PT_OPTS)"
	else
		shout "passthrough_ll leg FAILED: $PT_STATUS"
	fi
fi
has native && mkdir -p "$WORK/native"

# Warm-up, not recorded.  A file as big as the largest run, written and
# deleted, leaves that much memory recently used for the first run to
# recycle; and first writes through a fresh mount are slower.
if [ -n "$SIDE_WORKLOADS" ]; then
	"$PERF" produce -q --bytes "$BIG" -w 128K "$WORK/warmup" >/dev/null 2>&1
	rm -f "$WORK/warmup"
	for s in $(fs_systems); do
		system_down "$s" >/dev/null && continue
		d=$(make_topic "$s" warmup) || continue
		"$PERF" produce -q -n 20k -w 128K "$d/0" >/dev/null 2>&1
		"$PERF" produce -q -n 2k "$d/0" >/dev/null 2>&1
		drop_topic "$s" warmup
	done
fi

# zstd runs after the rounds: keep its time out of their budget.
ROUND_DEADLINE=$DEADLINE
wants zstd && has topicfs && ROUND_DEADLINE=$(( DEADLINE - ZSTD_RESERVE ))
ROUNDS_DONE=0
STOP_NOTE=""
for r in $(seq "$ROUNDS"); do
	rs=$(date +%s)
	run_round "$r"
	ROUNDS_DONE=$r
	re=$(date +%s)
	took=$(( re - rs ))
	if [ "$r" -lt "$ROUNDS" ] && [ $(( re - T0 + took )) -gt "$ROUND_DEADLINE" ]; then
		STOP_NOTE="stopped after $r of $ROUNDS rounds: another round (${took} s) would pass the ${ROUND_DEADLINE} s budget"
		say "$STOP_NOTE"
		break
	fi
done
cleanup
wants zstd && run_zstd
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
trap - EXIT

# Versions and settings for the record.
TFS_EXIT=$(cat "$WORK/topicfs.exit" 2>/dev/null || echo "")
cat >"$WORK/meta.json" <<EOF
{
  "stamp": $(jstr "$STAMP"),
  "date_utc": $(jstr "$(date -u '+%Y-%m-%d %H:%M:%S')"),
  "command": $(jstr "make bench$([ "$QUICK" = 1 ] && echo ' BENCH_QUICK=1')${BENCH_WORKLOADS:+ BENCH_WORKLOADS=\"$BENCH_WORKLOADS\"}"),
  "quick": $([ "$QUICK" = 1 ] && echo true || echo false),
  "rounds_requested": $ROUNDS,
  "rounds_done": $ROUNDS_DONE,
  "stop_note": $(jstr "$STOP_NOTE"),
  "systems": $(jstr "$SYSTEMS"),
  "workloads": $(jstr "$WORKLOADS"),
  "seconds": $(( $(date +%s) - T0 )),
  "kernel": $(jstr "$(uname -r)"),
  "cpus": $(nproc),
  "cpu_model": $(jstr "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"),
  "mem_gib": $(awk '/MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo),
  "fs": $(jstr "$(df -P -T "$ROOT/bench/work" | awk 'NR==2 { print $2 " on " $1 }')"),
  "loadavg_before": $(jstr "$LOAD_BEFORE"),
  "loadavg_after": $(jstr "$LOAD_AFTER"),
  "libfuse": $(jstr "$(pkg-config --modversion fuse3 2>/dev/null)"),
  "redis": $(jstr "$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([^ ]*\).*/\1/p')"),
  "topicfs_status": $(jstr "$TFS_STATUS"),
  "topicfs_exit": $(jstr "$TFS_EXIT"),
  "topicfs_args": $(jstr "${BENCH_TOPICFS_ARGS:-}"),
  "topicfs_commit": $(jstr "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"),
  "topicfs_build": $(jstr "$TFS_BUILD"),
  "passthrough_ll_options": $(jstr "-f -o source=DIR,$PT_OPTS"),
  "passthrough_ll_status": $(jstr "$PT_STATUS"),
  "cold_read": $([ "$COLD" = 1 ] && echo true || echo false),
  "record_size": $RSIZE,
  "sizes": {"zstd": $(jstr "$([ "$QUICK" = 1 ] && echo 128M || echo 1G)"), "append_128k": $(jstr "$BIG"), "append_1rec": $(jstr "$N1"), "append_4w": $(jstr "$N4"), "fsync_1m": $(jstr "$FSYNC_BYTES"), "follow_records": $(jstr "$NFOLLOW"), "follow_rate": $FOLLOW_RATE, "redis_batch": $REDIS_N_BATCH, "redis_1": $REDIS_N_1, "redis_4": $REDIS_N_4},
  "commands": {
    "append-128k": $(jstr "topicfs-perf $W_BIG_ARGS FILE; redis-benchmark -c 8 -P 64 -n $REDIS_N_BATCH XADD bench '*' v <200 B>"),
    "read-1g": $(jstr "topicfs-perf $W_READ_ARGS FILE (the file append-128k wrote)"),
    "append-1rec": $(jstr "topicfs-perf $W_1REC_ARGS FILE; redis-benchmark -c 1 -P 1 -n $REDIS_N_1 XADD ..."),
    "append-4w": $(jstr "topicfs-perf $W_4W_ARGS FILE; redis-benchmark -c 4 -P 1 -n $REDIS_N_4 XADD ..."),
    "fsync-1m": $(jstr "topicfs-perf $W_FSYNC_ARGS FILE"),
    "follow-1": $(jstr "topicfs-perf $W_FOLLOW_ARGS -F 1 --wait block|inotify --append-to T/0 T/.follow/0|T/0"),
    "follow-100": $(jstr "topicfs-perf $W_FOLLOW_ARGS -F 100 --wait block|inotify --append-to T/0 T/.follow/0|T/0"),
    "zstd": $(jstr "$ZSTD_CMD")
  }
}
EOF

say "writing the report"
python3 "$ROOT/contrib/bench/report.py" "$WORK" "$RESULTS" "$STAMP"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then
	say "report failed (exit $rc)"
	exit 2
fi
if [ "$TFS_STATUS" != ok ] && has topicfs; then
	shout "topicfs leg FAILED: $TFS_STATUS" \
	      "Its rows in $RESULTS/latest.md are marked FAILED."
fi
say "done in $(( $(date +%s) - T0 )) s: $RESULTS/latest.md"
exit $rc
