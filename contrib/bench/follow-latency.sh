#!/bin/bash
# contrib/bench/follow-latency.sh - append-to-read latency through .follow.
#
# Mounts a fresh node (build/topicfs -f, data and mount point in a
# temporary folder), runs contrib/bench/follow-latency.c with 1 and with
# 100 followers blocked in read() on MNT/lat/.follow/0, and prints a
# Markdown table of the latency from write() return to read() return
# (the issue 3 target: p99 under 1 ms for one follower on an idle
# machine).  The tool is built into $B/ from its source if it is missing
# or older than the source.
#
# Environment:
#   B=build                 the build folder (as in the Makefile)
#   RECORDS=3000            records per run (100 followers: a third)
#   GAP_US=500              pause between records (followers re-park)
#   MODE=threads|processes  how followers run (default threads)
#   TOPICFS_ARGS            extra daemon arguments (e.g. "-o fuse.threads=4")
#
# Exit status: 0, or 1 when a run or the daemon failed.  It stops only the
# daemon it started, by pid.

set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
TOPICFS=$ROOT/$B/topicfs
TOOL=$ROOT/$B/follow-latency
SRC=$ROOT/contrib/bench/follow-latency.c
RECORDS=${RECORDS:-3000}
GAP_US=${GAP_US:-500}
MODE=${MODE:-threads}

die() { echo "follow-latency: $*" >&2; exit 1; }

[ -x "$TOPICFS" ] || die "no $TOPICFS: run make first"
if [ ! -x "$TOOL" ] || [ "$SRC" -nt "$TOOL" ]; then
	${CC:-cc} -O2 -g -std=gnu11 -Wall -Wextra -pthread -o "$TOOL" "$SRC" ||
		die "cannot build $TOOL"
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/tfs-follow-lat.XXXXXX")
MNT=$W/mnt
mkdir -p "$MNT"
# shellcheck disable=SC2086
"$TOPICFS" -f ${TOPICFS_ARGS:-} "$W/data" "$MNT" >"$W/daemon.log" 2>&1 &
PID=$!

cleanup() {
	local i=0
	if grep -qs " $MNT fuse" /proc/mounts; then
		until fusermount3 -u "$MNT" 2>/dev/null; do
			i=$((i + 1))
			[ $i -gt 50 ] && { fusermount3 -u -z "$MNT"; break; }
			sleep 0.1
		done
	fi
	if kill -0 "$PID" 2>/dev/null; then
		wait "$PID" || rc=1
	fi
	[ "${rc:-0}" -eq 0 ] && rm -rf "$W"
}
trap cleanup EXIT

for _ in $(seq 1 200); do
	grep -qs " $MNT fuse" /proc/mounts && break
	kill -0 "$PID" 2>/dev/null || die "topicfs did not start: $(cat "$W/daemon.log")"
	sleep 0.05
done
mkdir "$MNT/lat" || die "cannot create a topic"

flag=""
[ "$MODE" = processes ] && flag=-P
rc=0
rows=""
for f in 1 100; do
	n=$RECORDS
	[ "$f" -gt 1 ] && n=$((RECORDS / 3))
	out=$("$TOOL" -F "$f" -n "$n" -w $((n / 20)) -g "$GAP_US" $flag \
		"$MNT/lat/0" "$MNT/lat/.follow/0") || {
		echo "follow-latency: run with $f followers failed" >&2
		rc=1
		continue
	}
	echo "$out" | sed 's/^/# /' >&2
	per=$(echo "$out" | awk '$1 == "per_read" { print $3, $5, $7, $9 }')
	all=$(echo "$out" | awk '$1 == "all" { print $3, $5, $7, $9 }')
	rows+=$(printf '| %s | %s | %s |' "$f" "$(echo "$per" | awk '{ printf "%s | %s | %s | %s", $1, $2, $3, $4 }')" \
		"$(echo "$all" | awk '{ printf "%s | %s", $1, $3 }')")
	rows+=$'\n'
done

cat <<EOF
Append-to-read latency through \`.follow\` ($MODE; µs from \`write()\` return to \`read()\` return; ${GAP_US} µs between records; load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores)

| followers | p50 | p90 | p99 | max | all followers p50 | all followers p99 |
|---:|---:|---:|---:|---:|---:|---:|
$rows
EOF
exit $rc
