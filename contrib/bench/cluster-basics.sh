#!/bin/bash
# contrib/bench/cluster-basics.sh - the first replicated figures: failover
# time, one-line write latency and 128 KiB-write throughput, a three-node
# cluster (RF 3) against a standalone node, measured in one run on this
# machine.
#
# Starts a private cluster with contrib/cluster.sh (etcd and three nodes on
# 127.0.0.1, ports from PORT) and one standalone node beside it, then:
#
#   latency     one 200-byte record per write(), RECORDS writes, with
#               topicfs-perf produce: standalone; RF 3 acks=all written on
#               the leader's node and on a follower's (forwarded); the same
#               with acks=1.  p50 p99 p99.9 of write() in microseconds.
#   throughput  BYTES of 200-byte records in 128 KiB writes, one writer:
#               standalone and RF 3 acks=all on the leader's node and on a
#               follower's; MB/s and the ratio to standalone.  Each round
#               alternates the systems; the median of ROUNDS is reported.
#   failover    a writer appends one line every millisecond on a follower's
#               node and logs when each write() returned; the leader is
#               killed with SIGKILL; the failover time is the longest
#               write() that returned after the kill: the one in flight
#               when the leader died, which began at most one write
#               before it.  KILLS times (the killed node restarts and the
#               ISR fills up in between).
#
# Prints a Markdown table.  Environment: PORT (default 28900), SESSION
# (session.timeout.ms, default 6000: the shipped default), ROUNDS (3),
# RECORDS (5000), BYTES (256M), KILLS (3), B (build folder).
#
# It stops only what it started: the cluster through contrib/cluster.sh
# (by recorded PIDs), the standalone daemon and the writer by PID.
set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
TOPICFS=$ROOT/$B/topicfs
PERF=$ROOT/$B/topicfs-perf
PORT=${PORT:-28900}
SESSION=${SESSION:-6000}
ROUNDS=${ROUNDS:-3}
RECORDS=${RECORDS:-5000}
BYTES=${BYTES:-256M}
KILLS=${KILLS:-3}

die() { echo "cluster-basics: $*" >&2; exit 1; }
[ -x "$TOPICFS" ] && [ -x "$PERF" ] || die "run make first ($B/topicfs, $B/topicfs-perf)"
for c in etcd jq python3 setfattr getfattr; do
	command -v $c >/dev/null || die "missing $c: run contrib/install-deps.sh cluster"
done

W=$(mktemp -d "${TMPDIR:-/tmp}/tfs-cluster-basics.XXXXXX")
export CLUSTER_DIR=$W/c CLUSTER_PORT=$PORT TOPICFS
export CLUSTER_OPTS="session.timeout.ms=$SESSION,request.timeout.ms=30000,replica.lag.time.max.ms=10000"
C=$ROOT/contrib/cluster.sh
SPID=
WPID=

cleanup() {
	[ -n "$WPID" ] && kill "$WPID" 2>/dev/null
	"$C" stop >/dev/null 2>&1
	if [ -n "$SPID" ]; then
		fusermount3 -u "$W/s/mnt" 2>/dev/null || kill "$SPID" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$SPID" 2>/dev/null
		fusermount3 -u -z "$W/s/mnt" 2>/dev/null
	fi
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mnt() { echo "$CLUSTER_DIR/n$1/mnt"; }

"$C" start >"$W/start.log" 2>&1 || { cat "$W/start.log" >&2; die "the cluster did not start"; }
mkdir -p "$W/s/mnt"
"$TOPICFS" -f "$W/s/data" "$W/s/mnt" >"$W/s.log" 2>&1 &
SPID=$!
for _ in $(seq 100); do mountpoint -q "$W/s/mnt" && break; sleep 0.1; done
mountpoint -q "$W/s/mnt" || die "the standalone node did not mount"

leader_of() { # topic -> node id, once all three name the same leader
	local t=$1 l k
	for _ in $(seq 300); do
		l=$(getfattr --only-values -n user.topicfs.leader "$(mnt 1)/$t/0" 2>/dev/null)
		k=0
		for i in 1 2 3; do
			[ -n "$l" ] && [ "$(getfattr --only-values -n user.topicfs.leader "$(mnt $i)/$t/0" 2>/dev/null)" = "$l" ] && k=$((k + 1))
		done
		[ $k = 3 ] && { echo "$l"; return 0; }
		sleep 0.1
	done
	return 1
}
isr_full() { # topic
	local n
	for _ in $(seq 600); do
		n=$(getfattr --only-values -n user.topicfs.isr "$(mnt 1)/$1/0" 2>/dev/null | tr ',' '\n' | grep -c .)
		[ "$n" = 3 ] && return 0
		sleep 0.1
	done
	return 1
}
other_than() { local i; for i in 1 2 3; do [ "$i" != "$1" ] && { echo "$i"; return; }; done; }

topic() { # name acks -> leader id
	mkdir "$(mnt 1)/$1" || die "mkdir $1"
	[ "$2" = all ] || setfattr -n user.topicfs.acks -v "$2" "$(mnt 1)/$1"
	leader_of "$1" >/dev/null || die "no leader for $1"
	isr_full "$1" || die "ISR of $1 not full"
	leader_of "$1"
}

# One produce run: prints "p50 p99 p999 MBps".
produce() {
	local out
	out=$("$PERF" produce "$@") || { echo "$out" >&2; return 1; }
	echo "$out" | awk '/write\(\)/ { p50=$4; p99=$8; p999=$10 }
		/records\/s/ { for (i = 1; i <= NF; i++) if ($i == "MB/s,") mb=$(i-1) }
		END { print p50, p99, p999, mb }'
}

echo "cluster-basics: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), session.timeout.ms $SESSION" >&2

# --- latency ------------------------------------------------------------------
L_ALL=$(topic lat-all all)
L_ONE=$(topic lat-one 1)
mkdir "$W/s/mnt/lat"
F_ALL=$(other_than "$L_ALL")
F_ONE=$(other_than "$L_ONE")
declare -A LAT
for r in $(seq "$ROUNDS"); do
	LAT[s]+="$(produce -n "$RECORDS" -s 200 "$W/s/mnt/lat/0")"$'\n'
	LAT[all_l]+="$(produce -n "$RECORDS" -s 200 "$(mnt "$L_ALL")/lat-all/0")"$'\n'
	LAT[all_f]+="$(produce -n "$RECORDS" -s 200 "$(mnt "$F_ALL")/lat-all/0")"$'\n'
	LAT[one_l]+="$(produce -n "$RECORDS" -s 200 "$(mnt "$L_ONE")/lat-one/0")"$'\n'
	LAT[one_f]+="$(produce -n "$RECORDS" -s 200 "$(mnt "$F_ONE")/lat-one/0")"$'\n'
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
col() { echo "${LAT[$1]}" | grep . | awk -v c="$2" '{ print $c }' | median; }

# --- throughput ------------------------------------------------------------------
T=$(topic tput all)
TF=$(other_than "$T")
mkdir "$W/s/mnt/tput"
declare -A TP
for r in $(seq "$ROUNDS"); do
	TP[s]+="$(produce --bytes "$BYTES" -w 128K "$W/s/mnt/tput/0" | awk '{ print $4 }')"$'\n'
	TP[l]+="$(produce --bytes "$BYTES" -w 128K "$(mnt "$T")/tput/0" | awk '{ print $4 }')"$'\n'
	TP[f]+="$(produce --bytes "$BYTES" -w 128K "$(mnt "$TF")/tput/0" | awk '{ print $4 }')"$'\n'
done
tp() { echo "${TP[$1]}" | grep . | median; }

# --- failover ----------------------------------------------------------------------
FO=$(topic fo all)
FAIL=()
for k in $(seq "$KILLS"); do
	L=$(leader_of fo) || die "no leader for fo"
	S=$(other_than "$L")
	python3 - "$(mnt "$S")/fo/0" "$W/fo-$k.log" <<'EOF' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
log = open(sys.argv[2], "w", buffering=1)
i = 0
end = time.monotonic() + 120
while time.monotonic() < end:
    t0 = time.monotonic()
    try:
        os.write(fd, b"fo %08d %s\n" % (i, b"x" * 60))
        log.write("ok %.6f %.6f\n" % (t0, time.monotonic()))
    except OSError as e:
        log.write("err %.6f %.6f %s\n" % (t0, time.monotonic(), e.errno))
    i += 1
    if os.path.exists(sys.argv[2] + ".stop"):
        break
    time.sleep(0.001)
EOF
	WPID=$!
	sleep 2
	# The clock starts once the leader is dead: a write that began before
	# the kill landed could otherwise count as the first after it.
	LPID=$(cat "$CLUSTER_DIR/n$L.pid")
	kill -9 "$LPID"
	for _ in $(seq 100); do
		kill -0 "$LPID" 2>/dev/null || break
		grep -qs '^State:[[:space:]]*Z' "/proc/$LPID/status" && break
		sleep 0.01
	done
	T0=$(python3 -c 'import time; print("%.6f" % time.monotonic())')
	sleep $((SESSION / 1000 * 3 + 3))
	touch "$W/fo-$k.log.stop"
	wait "$WPID"
	WPID=
	# T0 is read after the kill (a python start, slow on a loaded
	# machine): the first write begun after it shows the lower bound.
	first=$(awk -v t0="$T0" '$1 == "ok" && $2 > t0 { printf "%.0f\n", ($3 - t0) * 1000; exit }' "$W/fo-$k.log")
	errs=$(awk -v t0="$T0" '$1 == "err" && $3 > t0' "$W/fo-$k.log" | wc -l)
	FAIL+=("$(awk -v t0="$T0" '$3 > t0 { d = ($3 - $2) * 1000; if (d > m) m = d }
		END { printf "%.0f", m }' "$W/fo-$k.log")")
	echo "failover $k: leader $L killed, writer on node $S: longest write() ${FAIL[-1]} ms, first write begun after the kill returned ${first} ms after it, $errs failed writes" >&2
	fusermount3 -u -z "$(mnt "$L")" 2>/dev/null
	"$C" restart "$L" >/dev/null 2>&1 || die "node $L did not restart"
	isr_full fo || die "node $L did not rejoin"
done

# --- report --------------------------------------------------------------------------
s_mb=$(tp s)
cat <<EOT
| what | p50 µs | p99 µs | p99.9 µs |
|---|---|---|---|
| one 200 B line per write(), standalone | $(col s 1) | $(col s 2) | $(col s 3) |
| RF 3 acks=all, on the leader's node | $(col all_l 1) | $(col all_l 2) | $(col all_l 3) |
| RF 3 acks=all, on a follower's node | $(col all_f 1) | $(col all_f 2) | $(col all_f 3) |
| RF 3 acks=1, on the leader's node | $(col one_l 1) | $(col one_l 2) | $(col one_l 3) |
| RF 3 acks=1, on a follower's node | $(col one_f 1) | $(col one_f 2) | $(col one_f 3) |

| 128 KiB writes, $BYTES, one writer | MB/s | × standalone |
|---|---|---|
| standalone | $s_mb | 1.00 |
| RF 3 acks=all, on the leader's node | $(tp l) | $(awk -v a="$(tp l)" -v b="$s_mb" 'BEGIN { printf "%.2f", a / b }') |
| RF 3 acks=all, on a follower's node | $(tp f) | $(awk -v a="$(tp f)" -v b="$s_mb" 'BEGIN { printf "%.2f", a / b }') |

Failover (session.timeout.ms $SESSION), the longest write() on a survivor
across a kill -9 of the leader: ${FAIL[*]} ms.

Medians of $ROUNDS rounds; $(nproc) cores; load at the end $(cut -d' ' -f1-3 /proc/loadavg).
EOT
