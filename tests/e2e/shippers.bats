#!/usr/bin/env bats
# The programs people already run, for real, against a real mount, with the
# recipes of docs/RECIPES.md: shell producers and consumers, the time
# xattr, rsyslog, syslog-ng, Python logging, logrotate.

load helper
load ops

setup_file() {
	# Debian's syslog-ng conflicts with rsyslog: an unpacked copy under
	# build/ (a no-op when it is already there).
	"$BATS_TEST_DIRNAME/../../contrib/syslog-ng-local.sh" >&2 3>&-
}

setup() {
	setup_node
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
	# Its fchmod to perm() took effect, and left the log readable by all.
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
