#!/bin/bash
# contrib/bench/nginx-log.sh - what logging to topicfs costs nginx: wrk
# against one nginx whose access log is on topicfs (unbuffered, and with
# buffer=64k flush=1s) or on the native file system, in one run.
#
#   contrib/bench/nginx-log.sh [DIR]
#
# Mounts a topicfs of its own (B/topicfs -f -o allow_other; data and
# mount point under DIR, by default bench/work/nginx-STAMP) and starts
# three nginx, one per case (master as root, 2 workers as www-data, as
# Debian runs it; separate workers so that one case's waits never hold up
# another's requests), on free loopback ports.  Each answers "ok\n" to
# every GET and logs it in the format of docs/RECIPES.md (nginx) to:
#
#   topicfs      MNT/web/0, unbuffered: one write() per request
#   topicfs-buf  MNT/webbuf/0 with buffer=64k flush=1s
#   native       DIR/native/access.log, unbuffered (the file system DIR
#                is on)
#
# Each round runs wrk (2 threads, 16 connections, SECONDS seconds, after a
# 1 s warm-up of its own) against each case; the order rotates from round
# to round so that drift on the shared machine is spread over all three.
# Prints requests/s per case (median, min-max) and the ratio to native:
# of the medians, and the median of the per-round ratios.  Checks that
# every log holds at least as many lines as wrk counted responses.
#
# Writes DIR/result.json.  Environment:
#   BENCH_NGINX_ROUNDS=N    rounds (default 5)
#   BENCH_NGINX_SECONDS=N   seconds per wrk run (default 5)
#   B=build                 the build folder
# Exit status 0 when every run worked and checked out, 1 when one failed,
# 2 when it could not start.
#
# It starts one daemon and three nginx and stops exactly those, by pid.

set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-build}
TOPICFS=$ROOT/$B/topicfs
DIR=${1:-$ROOT/bench/work/nginx-$(date -u +%Y%m%d-%H%M%S)}
DATA=$DIR/data
MNT=$DIR/mnt
ROUNDS=${BENCH_NGINX_ROUNDS:-5}
SECONDS_PER_RUN=${BENCH_NGINX_SECONDS:-5}
CASES="topicfs topicfs-buf native"
WORKER_USER=www-data

. "$(dirname "$0")/lib.sh"
say() { printf 'nginx-log: %s\n' "$*" >&2; }

for t in nginx wrk curl python3 fusermount3 timeout; do
	command -v $t >/dev/null ||
		{ say "missing $t: run contrib/install-deps.sh bench"; exit 2; }
done
[ -x "$TOPICFS" ] || { say "$B/topicfs not found (run make all)"; exit 2; }
id "$WORKER_USER" >/dev/null 2>&1 || { say "no user $WORKER_USER"; exit 2; }
[ "$(id -u)" -eq 0 ] || { say "run as root (mount, nginx's user)"; exit 2; }

mkdir -p "$DIR" "$DATA" "$MNT" "$DIR/native" "$DIR/nginx-tmp" || exit 2
# The workers reach the native log and the mount point through DIR.
chmod 0755 "$DIR"
STATUS=0
TFS_PID=
declare -A NGINX_PIDS=()

cleanup() {
	local pid
	for pid in "${NGINX_PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null || continue
		kill -QUIT "$pid"
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	done
	if [ -n "$TFS_PID" ]; then
		reap_fuse "$MNT" "$TFS_PID" topicfs
		if [ "$REAPED_RC" -ne 0 ]; then
			say "topicfs exited with $REAPED_RC"
			exit 1
		fi
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- topicfs --------------------------------------------------------------

"$TOPICFS" -f -o allow_other "$DATA" "$MNT" >"$DIR/topicfs.log" 2>&1 &
TFS_PID=$!
for _ in $(seq 200); do
	grep -qs " $MNT fuse.topicfs " /proc/mounts && stat -f "$MNT" >/dev/null 2>&1 && break
	kill -0 "$TFS_PID" 2>/dev/null || { say "topicfs did not start: $(tail -3 "$DIR/topicfs.log")"; TFS_PID=; exit 2; }
	sleep 0.05
done
is_mounted "$MNT" || { say "topicfs did not mount in 10 s"; exit 2; }
mkdir "$MNT/web" "$MNT/webbuf" || exit 2

# ---- nginx ----------------------------------------------------------------

# One nginx per case, each with its own workers: a worker waiting on one
# log must not hold up the requests of another case.
declare -A PORT LOGFILE
LOGFILE[topicfs]=$MNT/web/0
LOGFILE[topicfs-buf]=$MNT/webbuf/0
LOGFILE[native]=$DIR/native/access.log
declare -A LOGOPTS=([topicfs]="" [topicfs-buf]=" buffer=64k flush=1s" [native]="")
for c in $CASES; do
	PORT[$c]=$(free_port)
	d=$DIR/nginx-$c
	mkdir -p "$d/tmp"
	cat >"$d/nginx.conf" <<EOF
user $WORKER_USER;
worker_processes 2;
pid $d/nginx.pid;
error_log $d/error.log notice;
events { worker_connections 1024; }
http {
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    log_format topicfs '\$remote_addr - \$remote_user [\$time_local] "\$request" '
                       '\$status \$body_bytes_sent "\$http_referer" "\$http_user_agent" '
                       'rt=\$request_time';
    server {
        listen 127.0.0.1:${PORT[$c]};
        access_log ${LOGFILE[$c]} topicfs${LOGOPTS[$c]};
        location / { return 200 "ok\\n"; }
    }
}
EOF
	nginx -c "$d/nginx.conf" -p "$d/" -e "$d/error.log" ||
		{ say "nginx ($c) did not start: $(tail -3 "$d/error.log")"; exit 2; }
	NGINX_PIDS[$c]=$(cat "$d/nginx.pid")
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:${PORT[$c]}/ready" >/dev/null && break
		sleep 0.1
	done
	curl -sf "http://127.0.0.1:${PORT[$c]}/ready" >/dev/null ||
		{ say "nginx ($c) does not answer on ${PORT[$c]}"; exit 2; }
done

say "nginx $(nginx -v 2>&1 | sed 's|.*/||'), wrk -t2 -c16 -d${SECONDS_PER_RUN}s, $ROUNDS rounds; $DIR"

# ---- runs -----------------------------------------------------------------

lines() { if [ -e "$1" ]; then wc -l <"$1"; else echo 0; fi; }

# run CASE SECONDS: prints "requests requests_per_second".
run_wrk() {
	local c=$1 secs=$2 out
	out=$(timeout $((secs + 60)) wrk -t2 -c16 -d"${secs}s" --timeout 10s \
		"http://127.0.0.1:${PORT[$c]}/" 2>&1) || { say "wrk failed: $out"; return 1; }
	printf '%s\n' "$out" >>"$DIR/wrk-$c.out"
	local n rps
	n=$(printf '%s\n' "$out" | sed -n 's/^ *\([0-9]*\) requests in .*/\1/p')
	rps=$(printf '%s\n' "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
	[ -n "$n" ] && [ -n "$rps" ] || { say "cannot parse wrk: $out"; return 1; }
	if printf '%s\n' "$out" | grep -qE 'Non-2xx|Socket errors'; then
		say "$c: wrk saw errors: $(printf '%s\n' "$out" | grep -E 'Non-2xx|Socket errors')"
		return 1
	fi
	echo "$n $rps"
}

: >"$DIR/runs.txt"
for c in $CASES; do
	run_wrk "$c" 1 >/dev/null || STATUS=1	# warm-up
done
set -- $CASES
for r in $(seq 1 "$ROUNDS"); do
	order="$*"
	for c in $order; do
		before=$(lines "${LOGFILE[$c]}")
		res=$(run_wrk "$c" "$SECONDS_PER_RUN") || { STATUS=1; continue; }
		read -r n rps <<<"$res"
		# Buffered lines reach the file within flush=1s.
		for _ in $(seq 50); do
			[ $(($(lines "${LOGFILE[$c]}") - before)) -ge "$n" ] && break
			sleep 0.1
		done
		got=$(($(lines "${LOGFILE[$c]}") - before))
		if [ "$got" -lt "$n" ]; then
			say "round $r $c: $n requests answered, only $got lines logged"
			STATUS=1
		fi
		echo "$r $c $rps $n $got" >>"$DIR/runs.txt"
		say "round $r: $c $rps requests/s ($n requests, $got lines)"
	done
	set -- "${@:2}" "$1"		# rotate the order
done

# ---- report ---------------------------------------------------------------

python3 - "$DIR/runs.txt" "$DIR/result.json" "$ROUNDS" "$SECONDS_PER_RUN" <<'EOF'
import json, statistics, sys
runs = [l.split() for l in open(sys.argv[1]) if l.strip()]
rps = {}
by_round = {}
for r, c, v, n, got in runs:
    rps.setdefault(c, []).append(float(v))
    by_round.setdefault(r, {})[c] = float(v)
res = {"rounds": int(sys.argv[3]), "seconds": int(sys.argv[4]),
       "wrk": "-t2 -c16", "cases": {}}
native = statistics.median(rps["native"]) if rps.get("native") else None
print("%-12s %12s %22s %16s %18s" % ("case", "median r/s", "min-max r/s",
                                      "ratio (medians)", "ratio (per round)"))
for c in ["topicfs", "topicfs-buf", "native"]:
    v = rps.get(c, [])
    if not v:
        continue
    med = statistics.median(v)
    per = [by_round[r][c] / by_round[r]["native"] for r in by_round
           if c in by_round[r] and "native" in by_round[r]]
    ratio = med / native if native else None
    pr = statistics.median(per) if per else None
    res["cases"][c] = {"rps": v, "median": med, "min": min(v), "max": max(v),
                       "ratio_to_native": ratio, "ratio_per_round": pr}
    print("%-12s %12.0f %22s %16s %18s" % (
        c, med, "%.0f-%.0f" % (min(v), max(v)),
        "%.2f" % ratio if ratio else "-",
        "%.2f (%.2f-%.2f)" % (pr, min(per), max(per)) if per else "-"))
json.dump(res, open(sys.argv[2], "w"), indent=2)
EOF
[ $? -eq 0 ] || STATUS=1
exit $STATUS
