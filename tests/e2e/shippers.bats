#!/usr/bin/env bats
# The programs people already run, for real, against a real mount, with the
# recipes of docs/RECIPES.md: shell producers and consumers, the time
# xattr, rsyslog (also after it drops privileges), syslog-ng, nginx (its
# workers run as www-data; nginx -s reopen; under wrk load), Python
# logging, logrotate.  Tests named "(allow_other)" mount with it, as the
# programs that write as another user than root need.

load helper
load ops

setup_file() {
	# Debian's syslog-ng conflicts with rsyslog: an unpacked copy under
	# build/ (a no-op when it is already there).
	"$BATS_TEST_DIRNAME/../../contrib/syslog-ng-local.sh" >&2 3>&-
}

setup() {
	case "$BATS_TEST_DESCRIPTION" in
	*"(allow_other)"*)
		setup_node -o allow_other
		# The other users must reach the mount point inside $T.
		chmod 0755 "$T"
		;;
	*) setup_node ;;
	esac
}

teardown() {
	local p
	for p in "${BG_GROUPS[@]:-}"; do
		[ -n "$p" ] && kill -- "-$p" 2>/dev/null
	done
	for p in "${BG_PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null
	done
	for p in "${BG_GROUPS[@]:-}" "${BG_PIDS[@]:-}"; do
		[ -n "$p" ] && wait_pid_gone "$p" 10
	done
	teardown_node
}

# Starts a recipe that runs in the background (a consumer) in a session
# of its own, so that teardown can stop all of its processes.
start_recipe_bg() {
	local script
	script=$(recipe RECIPES.md "$1") || return 1
	(cd "$T" && exec setsid bash -c "$script
wait") </dev/null 3>&- &
	BG_GROUPS+=($!)
}

# Runs a recipe with bash in $T; background jobs it starts keep running.
run_recipe() {
	local script
	script=$(recipe RECIPES.md "$1") || return 1
	(cd "$T" && bash -euo pipefail -c "$script") 3>&-
}

# For wait_for, which runs its command again each time (a "$(...)" in its
# arguments would be expanded only once).
same_size() {
	[ "$(stat -c %s "$1")" -eq "$(stat -c %s "$2")" ]
}

has_lines() {
	[ "$(wc -l <"$1")" -ge "$2" ]
}

# Checks that FILE holds "<prefix> N" for N = 1..COUNT exactly once each,
# in order, and nothing else; on failure says what is missing, doubled or
# out of order, and keeps a copy of FILE in /tmp/tfs-failed.*.
check_numbered() {
	local file=$1 prefix=$2 count=$3 lines
	lines=$(wc -l <"$file")
	if grep -o "$prefix [0-9]*\$" "$file" | awk -v c="$count" -v lines="$lines" '
		{ n = $NF + 0; seen[n]++; if (n != NR && !first) first = NR " is #" n }
		END {
			for (i = 1; i <= c; i++) {
				if (!seen[i]) { missing++; if (!m1) m1 = i }
				else if (seen[i] > 1) dup++
			}
			if (NR != c || lines != c || missing || dup || first) {
				printf "%d lines, %d numbered, wanted %d; %d missing (first #%d), %d doubled; first out of place: record %s\n",
					lines, NR, c, missing, m1, dup, first
				exit 1
			}
		}' >&2; then
		return 0
	fi
	local keep
	keep=$(mktemp /tmp/tfs-failed.XXXXXX)
	cp "$file" "$keep"
	echo "copy kept in $keep" >&2
	return 1
}

@test "shell: parallel >> producers, tail -F and a .follow pipeline see every record once" {
	mkdir -p "$MNT/events"
	# Consumers first, so they watch the records arrive.
	start_recipe_bg tail-follow
	start_recipe_bg follow-pipeline
	run_recipe shell-produce
	run_recipe shell-pipe
	f=$MNT/events/0
	[ "$(wc -l <"$f")" -eq 3000 ]
	for h in web1 web2 web3 web4; do
		# Each producer's lines once each and in its own order.
		[ "$(grep -c "^$h request [0-9]* status=200\$" "$f")" -eq 500 ]
		grep "^$h " "$f" | awk '{ if ($3 != NR) exit 1 }'
	done
	grep '^batch line' "$f" >"$T/batch"
	check_numbered "$T/batch" "batch line" 1000
	# Every line is a whole record: nothing but the two shapes.
	[ "$(grep -vcE '^(web[1-4] request [0-9]+ status=200|batch line [0-9]+)$' "$f")" -eq 0 ]

	wait_for 10 same_size "$T/events.copy" "$f"
	cmp "$f" "$T/events.copy"

	echo 'web1 request 501 status=503' >>"$f"
	wait_for 10 grep -q 'status=503' "$T/errors"
	[ "$(cat "$T/errors")" = 'web1 request 501 status=503' ]
	wait_for 10 grep -q 'status=503' "$T/events.copy"

	run run_recipe replay-offset
	[ "$status" -eq 0 ]
	[ "$output" = 'web9 request 1 status=503' ]
}

@test "time xattr: tail -c from the first record at or after a time" {
	mkdir -p "$MNT/events"
	for i in $(seq 1 50); do echo "old $i"; done >>"$MNT/events/0"
	sleep 0.05
	t0=$(date +%s.%N)
	sleep 0.05
	for i in $(seq 1 20); do echo "new $i"; done >>"$MNT/events/0"
	script=$(recipe RECIPES.md time-xattr | sed "s|1 minute ago|@$t0|")
	run bash -euo pipefail -c "$script"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 20 ]
	[ "${lines[0]}" = "new 1" ]
	[ "${lines[19]}" = "new 20" ]
	# A time after the last record gives the end: nothing to read.
	script=$(recipe RECIPES.md time-xattr | sed "s|1 minute ago|tomorrow|")
	run bash -euo pipefail -c "$script"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "rsyslog: rsyslogd with its own config and socket, 2000 messages from logger, each once" {
	require rsyslogd logger
	recipe RECIPES.md rsyslog-standalone >"$T/rsyslog-standalone.conf"
	recipe RECIPES.md rsyslog-ruleset >"$T/60-topicfs.conf"
	mkdir -p "$T/rsyslog"
	cat "$T/rsyslog-standalone.conf" "$T/60-topicfs.conf" >"$T/check.conf"
	rsyslogd -N1 -f "$T/check.conf" >"$T/rsyslog-check.out" 2>&1 || {
		cat "$T/rsyslog-check.out" >&2
		false
	}
	run_recipe rsyslog-run >"$T/rsyslog.out" 2>&1
	BG_PIDS+=("$(cat "$T/rsyslog.pid")")
	wait_for 30 has_lines "$MNT/syslog/0" 2000
	sleep 0.3	# anything extra would show up now
	check_numbered "$MNT/syslog/0" message 2000 || {
		cat "$T/rsyslog.out" >&2
		false
	}
	# RSYSLOG_FileFormat: time host tag: message, one line per message.
	[ "$(grep -cE '^[0-9T:.+-]+ [^ ]+ demo(\[[0-9]+\])?: message [0-9]+$' "$MNT/syslog/0")" -eq 2000 ]
	kill -TERM "$(cat "$T/rsyslog.pid")"
	wait_pid_gone "$(cat "$T/rsyslog.pid")" 10
	if grep -iE 'error|omfile|suspend' "$T/rsyslog.out"; then
		false
	fi
}

@test "rsyslog: after \$PrivDropToUser nobody it appends to a partition given to nobody, 2000 messages once (allow_other)" {
	require rsyslogd logger
	mkdir "$MNT/syslog"
	chown nobody:nogroup "$MNT/syslog" "$MNT/syslog/0"
	# rsyslogd opens its socket as root, then runs as nobody: its work
	# folder (the disk queue) must be nobody's too.
	mkdir -p "$T/rsyslog"
	chown nobody:nogroup "$T/rsyslog"
	{
		printf '$PrivDropToUser nobody\n$PrivDropToGroup nogroup\n'
		recipe RECIPES.md rsyslog-standalone
	} >"$T/rsyslog-standalone.conf"
	recipe RECIPES.md rsyslog-ruleset >"$T/60-topicfs.conf"
	run_recipe rsyslog-run >"$T/rsyslog.out" 2>&1
	BG_PIDS+=("$(cat "$T/rsyslog.pid")")
	[ "$(ps -o user= -p "$(cat "$T/rsyslog.pid")")" = nobody ]
	wait_for 30 has_lines "$MNT/syslog/0" 2000 || {
		cat "$T/rsyslog.out" >&2
		false
	}
	sleep 0.3	# anything extra would show up now
	check_numbered "$MNT/syslog/0" message 2000
	kill -TERM "$(cat "$T/rsyslog.pid")"
	wait_pid_gone "$(cat "$T/rsyslog.pid")" 10
	# Every message was checked above; on a slow machine rsyslog's own
	# queue shutdown (10 ms) may time out at the TERM and say so.
	if grep -iE 'error|denied|omfile|suspend' "$T/rsyslog.out" |
		grep -vE 'queue shutdown timed out|cooperative cancellation'; then
		false
	fi
}

@test "syslog-ng: file() destination, 2000 messages from logger, each once" {
	require logger
	sng=$REPO/build/syslog-ng/syslog-ng
	[ -x "$sng" ] || {
		echo "no $sng: run contrib/install-deps.sh test" >&2
		false
	}
	recipe RECIPES.md syslog-ng-destination >"$T/syslog-ng-destination.conf"
	recipe RECIPES.md syslog-ng-standalone >"$T/syslog-ng-standalone.conf"
	script=$(recipe RECIPES.md syslog-ng-run | sed "s|^syslog-ng |$sng |")
	(cd "$T" && bash -euo pipefail -c "$script") >"$T/syslog-ng.out" 2>&1 3>&-
	BG_PIDS+=("$(cat "$T/syslog-ng.pid")")
	wait_for 30 has_lines "$MNT/syslog/0" 2000
	sleep 0.3
	check_numbered "$MNT/syslog/0" message 2000
	[ "$(grep -cE '^[0-9T:+-]+ [^ ]+ demo(\[[0-9]+\])?: message [0-9]+$' "$MNT/syslog/0")" -eq 2000 ]
	# perm(0644): syslog-ng's fchmod leaves the partition readable.
	[ "$(stat -c %a "$MNT/syslog/0")" = 644 ]
	kill -TERM "$(cat "$T/syslog-ng.pid")"
	wait_pid_gone "$(cat "$T/syslog-ng.pid")" 10
	if grep -iE 'error' "$T/syslog-ng.out"; then
		false
	fi
}

@test "python logging: FileHandler and WatchedFileHandler in two processes, records intact, none lost" {
	require python3
	mkdir "$MNT/app"
	recipe RECIPES.md python-logging >"$T/recipe.py"
	# Each process logs 3000 records after the recipe's "started" one;
	# every 100th is 20 KiB long, more than Python's 8 KiB buffer.
	cat >"$T/producer.py" <<'EOF'
import hashlib, logging, os, sys
exec(open(sys.argv[1]).read())
if sys.argv[2] == "FileHandler":
    log.removeHandler(handler)
    handler = logging.FileHandler(handler.baseFilename)   # mode 'a'
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(process)d %(levelname)s %(message)s"))
    log.addHandler(handler)
name = sys.argv[2]
for i in range(1, 3001):
    body = (name[0] * (20000 if i % 100 == 0 else 50 + i % 200))
    log.info("%s seq=%d len=%d sha=%s body=%s", name, i, len(body),
             hashlib.sha1(body.encode()).hexdigest()[:12], body)
EOF
	python3 "$T/producer.py" "$T/recipe.py" FileHandler 3>&- &
	p1=$!
	python3 "$T/producer.py" "$T/recipe.py" WatchedFileHandler 3>&- &
	p2=$!
	wait $p1
	wait $p2
	python3 - "$MNT/app/0" <<'EOF'
import hashlib, re, sys
rec = re.compile(r"^\S+ \S+ (\d+) INFO (?:started as pid \d+|(\w+) seq=(\d+) len=(\d+) sha=(\w+) body=(\w*))$")
seen = {"FileHandler": [], "WatchedFileHandler": []}
started = 0
with open(sys.argv[1], "rb") as f:
    data = f.read()
assert data.endswith(b"\n"), "partial last record"
for n, line in enumerate(data.decode().split("\n")[:-1], 1):
    m = rec.match(line)
    assert m, "line %d is not a whole record: %r" % (n, line[:120])
    if m.group(2) is None:
        started += 1
        continue
    name, seq, ln, sha, body = m.group(2), int(m.group(3)), int(m.group(4)), m.group(5), m.group(6)
    assert len(body) == ln and hashlib.sha1(body.encode()).hexdigest()[:12] == sha, \
        "line %d: damaged body" % n
    seen[name].append(seq)
assert started == 2, "%d started records" % started
for name, seqs in seen.items():
    assert seqs == list(range(1, 3001)), "%s: %d records, first gap near %s" % (
        name, len(seqs), next((i for i, s in enumerate(seqs, 1) if s != i), None))
print("ok: 6002 records intact")
EOF
}

@test "logrotate: copytruncate and create fail with EPERM and lose nothing" {
	require logrotate
	mkdir "$MNT/app"
	for i in $(seq 1 100); do echo "line $i"; done >>"$MNT/app/0"
	before=$(md5sum <"$MNT/app/0")
	recipe RECIPES.md logrotate-wrong >"$T/copytruncate.conf"
	sed 's/copytruncate/create/' "$T/copytruncate.conf" >"$T/create.conf"
	run logrotate -f -s "$T/state" "$T/copytruncate.conf"
	[ "$status" -ne 0 ]
	[[ "$output" == *"error opening $MNT/app/0: Operation not permitted"* ]]
	run logrotate -f -s "$T/state" "$T/create.conf"
	[ "$status" -ne 0 ]
	[[ "$output" == *"failed to rename $MNT/app/0 to $MNT/app/0.1: Operation not permitted"* ]]
	[ "$(md5sum <"$MNT/app/0")" = "$before" ]
	[ "$(ls "$MNT/app")" = 0 ]
	echo "line 101" >>"$MNT/app/0"
	[ "$(tail -n 1 "$MNT/app/0")" = "line 101" ]
	[ "$(xget records "$MNT/app/0")" = 101 ]
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The nginx recipes with port 8080 replaced by PORT: the configuration
# in $T/nginx.conf (run_nginx_recipe starts and signals that instance).
nginx_conf() {
	recipe RECIPES.md nginx-access-log >"$T/nginx-access-log.conf"
	recipe RECIPES.md nginx-standalone |
		sed "s/127\.0\.0\.1:8080/127.0.0.1:$1/" >"$T/nginx.conf"
}

run_nginx_recipe() {
	local script
	script=$(recipe RECIPES.md "$1" | sed "s/127\.0\.0\.1:8080/127.0.0.1:$2/") || return 1
	(cd "$T" && timeout 30 bash -euo pipefail -c "$script") 3>&-
}

# Starts the instance (nginx detaches; teardown stops it by its pid).
nginx_start() {
	run_nginx_recipe nginx-run "$1"
	NGINX_PID=$(cat "$T/nginx.pid")
	BG_PIDS+=("$NGINX_PID")
}

# nginx -s quit: the workers finish, flush their log buffers and exit.
nginx_quit() {
	nginx -c "$T/nginx.conf" -p "$T/" -e "$T/nginx-error.log" -s quit
	wait_pid_gone "$NGINX_PID" 20
}

# Lines of nginx's error log that say "reopening logs" (master, workers).
reopened() {
	[ "$(grep -c ': reopening logs$' "$T/nginx-error.log")" -ge "$1" ]
}

nginx_errors_none() {
	if grep -E '\[(emerg|alert|crit|error)\]|Permission denied|chown' "$T/nginx-error.log"; then
		echo "nginx reported errors (above)" >&2
		return 1
	fi
}

# Counts the request paths of the recipe's log format in FILE, checking
# every line is whole; prints "PATH COUNT" lines.
nginx_paths() {
	python3 - "$1" <<'PY'
import collections, re, sys
data = open(sys.argv[1], "rb").read().decode()
assert data.endswith("\n"), "partial last line"
pat = re.compile(r'^127\.0\.0\.1 - - \[[^]]+\] "GET (\S+) HTTP/1\.1" 200 3 '
                 r'"-" "[^"]*" rt=[0-9.]+$')
c = collections.Counter()
for n, line in enumerate(data.split("\n")[:-1], 1):
    m = pat.match(line)
    assert m, "line %d is not a whole access-log line: %r" % (n, line[:200])
    c[m.group(1)] += 1
for path, k in sorted(c.items()):
    print(path, k)
PY
}

@test "nginx: workers as www-data log to a partition, nginx -s reopen goes on, each request once, no permission errors (allow_other)" {
	require nginx curl
	run_recipe nginx-topic
	[ "$(stat -c '%U:%G' "$MNT/web/0")" = www-data:adm ]
	port=$(free_port)
	nginx_conf "$port"
	nginx_start "$port"
	curl -sf "http://127.0.0.1:$port/a/[1-100]" >/dev/null
	# What logrotate runs every day: the master reopens (and chowns) the
	# log, then each of the 2 workers reopens it as www-data.
	run_nginx_recipe nginx-reopen "$port"
	wait_for 10 reopened 3
	curl -sf "http://127.0.0.1:$port/b/[1-100]" >/dev/null
	nginx_quit
	nginx_paths "$MNT/web/0" >"$T/paths"
	for p in a b; do
		for i in $(seq 1 100); do echo "/$p/$i 1"; done
	done | sort >"$T/want"
	# nginx-run's readiness check asked for / (once or more).
	diff "$T/want" <(grep -v '^/ ' "$T/paths" | sort)
	[ "$(grep -vc '^/ ' "$T/paths")" -eq 200 ]
	nginx_errors_none
	[ "$(stat -c '%U:%G' "$MNT/web/0")" = www-data:adm ]
}

@test "nginx under wrk load: the access log on a partition has every request's line exactly once (allow_other)" {
	require nginx wrk curl
	# Only mkdir: the master opens the log as root and the workers inherit
	# it, so this works without a chown as long as nobody reopens.
	mkdir "$MNT/web"
	port=$(free_port)
	nginx_conf "$port"
	# The response names its request, so wrk can list what it got.
	sed -i 's|location / { return|location / { add_header X-Uri $request_uri always; return|' \
		"$T/nginx.conf"
	grep -q 'add_header X-Uri' "$T/nginx.conf"
	nginx_start "$port"
	cat >"$T/wrk.lua" <<'LUA'
-- Every request has its own path, /r/<thread>/<n>; every response's
-- X-Uri is kept, and done() writes them all to $WRK_GOT.
local threads = {}
local next_id = 0
function setup(thread)
	thread:set("id", next_id)
	next_id = next_id + 1
	table.insert(threads, thread)
end
function init(args)
	n = 0
	got = {}
	ngot = 0
end
function request()
	n = n + 1
	return wrk.format("GET", "/r/" .. id .. "/" .. n)
end
function response(status, headers, body)
	ngot = ngot + 1
	got[ngot] = (headers["X-Uri"] or "none") .. " " .. status
end
function done(summary, latency, requests)
	local f = assert(io.open(os.getenv("WRK_GOT"), "w"))
	for _, t in ipairs(threads) do
		local g = t:get("got")
		for i = 1, t:get("ngot") do
			f:write(g[i], "\n")
		end
	end
	f:close()
end
LUA
	WRK_GOT=$T/wrk-got timeout 60 wrk -t2 -c8 -d3s --timeout 10s \
		-s "$T/wrk.lua" "http://127.0.0.1:$port/" >"$T/wrk.out" 2>&1 3>&-
	cat "$T/wrk.out" >&2
	nginx_quit
	nginx_paths "$MNT/web/0" >"$T/paths"
	python3 - "$T/wrk.out" "$T/wrk-got" "$T/paths" <<'PY'
import re, sys
out = open(sys.argv[1]).read()
done = int(re.search(r"(\d+) requests in ", out).group(1))
got = open(sys.argv[2]).read().split()
got = [u for u, st in zip(got[::2], got[1::2])]
paths = {}
for line in open(sys.argv[3]):
    p, k = line.split()
    paths[p] = int(k)
assert done >= 100, "wrk completed only %d requests" % done
assert len(got) == done, "wrk: %d responses kept, %d reported" % (len(got), done)
assert len(set(got)) == len(got), "wrk got a path twice?"
dup = [p for p, k in paths.items() if k != 1 and p != "/"]
assert not dup, "%d paths logged more than once, e.g. %s" % (len(dup), dup[:5])
missing = [u for u in got if u not in paths]
assert not missing, "%d of %d answered requests not logged, e.g. %s" % (
    len(missing), len(got), missing[:5])
# Logged but not counted by wrk: only requests in flight when it stopped.
extra = set(paths) - set(got) - {"/"}
assert len(extra) <= 8, "%d lines for requests wrk never saw" % len(extra)
assert all(re.match(r"^/r/[01]/\d+$", p) for p in extra), sorted(extra)[:5]
print("%d requests, each logged once (%d more in flight at the end)"
      % (done, len(extra)))
PY
	nginx_errors_none
}
