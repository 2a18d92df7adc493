#!/usr/bin/env bats
# Live consumption (issue 3): .follow files block at the end and stream,
# poll/select/epoll wake, signals interrupt blocked reads, many parked
# followers cost nothing, unmount with parked readers is clean, and the
# plain file's size is always current for tail -f.
#
# Readers run in the background with their output in $T/NAME.out; `spawn`
# remembers their pids and teardown ends exactly those.  Timing figures
# (latencies, stat ratios) are printed to the bats output with `note`;
# only generous deadlines are asserted.

load helper

PROBE=$TOOLS/followprobe

setup() {
	[ -x "$PROBE" ] || { echo "no $PROBE: run make first" >&2; return 1; }
	require python3 awk grep tail
	BG=()
	setup_node
	mkdir "$MNT/t"
	P=$MNT/t/0
	F=$MNT/t/.follow/0
}

teardown() {
	stop_bg
	teardown_node
}

note() {
	echo "# $*" >&3
}

# spawn NAME CMD...: runs CMD in the background, output in $T/NAME.out.
spawn() {
	local name=$1
	shift
	"$@" >"$T/$name.out" 2>&1 &
	LAST=$!
	BG+=("$LAST")
}

gone() {
	! kill -0 "$1" 2>/dev/null
}

# spawn_in FILE NAME CMD...: the same with standard input from FILE.
spawn_in() {
	local in=$1 name=$2
	shift 2
	"$@" <"$in" >"$T/$name.out" 2>&1 &
	LAST=$!
	BG+=("$LAST")
}

# Waits up to SECS for background process PID to end; sets $rc.
wait_exit() {
	local pid=$1 secs=$2
	wait_for "$secs" gone "$pid" || return 1
	rc=0
	wait "$pid" || rc=$?
}

# Ends the background readers; a reader blocked in a .follow read ends
# only if the daemon honours the interrupt the kernel sends for it.
stop_bg() {
	local pid stuck=0
	for pid in "${BG[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${BG[@]}"; do
		if ! wait_for 5 gone "$pid"; then
			echo "reader $pid did not end on SIGTERM" >&2
			stuck=1
		fi
	done
	BG=()
	if [ $stuck -ne 0 ] && [ -n "${PID:-}" ]; then
		crash_node	# frees the stuck readers
		return 1
	fi
}

metric() {
	sed -n "s/^topicfs_$1 //p" "$MNT/.topicfs/metrics"
}

parked_is() {
	[ "$(metric parked_reads)" = "$1" ]
}

wait_parked() {
	wait_for "${2:-10}" parked_is "$1"
}

lines_are() {
	[ "$(wc -l <"$1")" -eq "$2" ]
}

@test "cat on .follow receives lines appended later by other processes, in order" {
	echo "line 0" >>"$P"
	spawn cat cat "$F"
	wait_parked 1
	for i in $(seq 1 100); do
		echo "line $i" >>"$P"
	done
	for i in $(seq 101 150); do
		sh -c 'echo "line $1" >>"$2"' sh "$i" "$P"
	done
	seq 151 300 | sed 's/^/line /' >>"$P"
	wait_for 10 lines_are "$T/cat.out" 301
	seq 0 300 | sed 's/^/line /' | cmp - "$T/cat.out"
	cmp "$P" "$T/cat.out"
	# Still parked at the new end, not spinning on end-of-file.
	wait_parked 1
	kill -0 "$LAST"
}

@test "grep --line-buffered, awk, jq and python stream from .follow" {
	require jq
	spawn grep grep --line-buffered ERROR "$F"
	if awk -W version 2>&1 | grep -q mawk; then
		# mawk fills its whole input buffer before it splits records
		# (on a pipe too); -W interactive reads stdin line by line.
		spawn_in "$F" awk awk -W interactive '{ print NR ": " $0 }'
	else
		spawn awk awk '{ print NR ": " $0; fflush() }' "$F"
	fi
	spawn py python3 -c '
import sys
for line in open(sys.argv[1]):
    print(line.upper(), end="", flush=True)' "$F"
	mkdir "$MNT/u"
	spawn jq jq --unbuffered -r 'select(.level == "ERROR") | .msg' "$MNT/u/.follow/0"
	wait_parked 4
	for l in "INFO a" "ERROR b" "INFO c" "ERROR d"; do
		echo "$l" >>"$P"
		echo "{\"level\":\"${l% *}\",\"msg\":\"${l#* }\"}" >>"$MNT/u/0"
	done
	wait_for 10 lines_are "$T/grep.out" 2
	wait_for 10 lines_are "$T/awk.out" 4
	wait_for 10 lines_are "$T/py.out" 4
	wait_for 10 lines_are "$T/jq.out" 2
	[ "$(cat "$T/grep.out")" = "$(printf 'ERROR b\nERROR d')" ]
	[ "$(sed -n 4p "$T/awk.out")" = "4: ERROR d" ]
	[ "$(sed -n 3p "$T/py.out")" = "INFO C" ]
	[ "$(cat "$T/jq.out")" = "$(printf 'b\nd')" ]
}

@test "a read below the end returns at once; tail -c +N on .follow, then live data" {
	seq 1 100 | sed 's/^/row /' >>"$P"
	size=$(fsize "$P")
	# One 1 MiB read at offset 0 returns the $size bytes there are, at once.
	[ "$(timeout 5 dd if="$F" bs=1M count=1 status=none | wc -c)" -eq "$size" ]
	timeout 5 dd if="$F" bs=1M count=1 status=none | cmp - "$P"
	[ "$(timeout 5 head -c 50 "$F")" = "$(head -c 50 "$P")" ]
	[ "$(timeout 5 dd if="$F" bs=1M skip=101 iflag=skip_bytes count=1 status=none)" = \
		"$(tail -c +102 "$P")" ]

	# From byte offset N (row 51 on), then whatever is appended.  GNU
	# tail flushes its output only in -f mode, so without a terminal
	# the bytes it copies from .follow would wait in its stdio buffer.
	off=$(($(head -n 50 "$P" | wc -c) + 1))
	spawn tailc stdbuf -oL tail -c +"$off" "$F"
	wait_for 10 lines_are "$T/tailc.out" 50
	[ "$(head -n 1 "$T/tailc.out")" = "row 51" ]
	echo "live 1" >>"$P"
	sh -c 'echo "live 2" >>"$1"' sh "$P"
	wait_for 10 lines_are "$T/tailc.out" 52
	{ seq 51 100 | sed 's/^/row /'; echo "live 1"; echo "live 2"; } |
		cmp - "$T/tailc.out"
}

@test "tail -f and tail -F on the plain file see appends from other processes" {
	echo "first" >>"$P"
	spawn tailf tail -f -s 0.1 "$P"
	spawn tailF tail -F -s 0.1 "$P"
	wait_for 10 grep -qx first "$T/tailf.out"
	wait_for 10 grep -qx first "$T/tailF.out"
	local t0 t1
	t0=$(date +%s%N)
	sh -c 'echo second >>"$1"' sh "$P"
	wait_for 10 grep -qx second "$T/tailf.out"
	wait_for 10 grep -qx second "$T/tailF.out"
	t1=$(date +%s%N)
	note "tail -f/-F -s 0.1 saw an append after $(((t1 - t0) / 1000000)) ms"
	for i in $(seq 1 30); do
		sh -c 'echo "more $1" >>"$2"' sh "$i" "$P"
	done
	wait_for 10 lines_are "$T/tailf.out" 32
	wait_for 10 lines_are "$T/tailF.out" 32
	cmp "$P" "$T/tailf.out"
	cmp "$P" "$T/tailF.out"
}

@test "poll, select and epoll wake when another process appends, and time out without data" {
	echo "before" >>"$P"
	local m
	for m in poll select epoll; do
		run "$PROBE" wait "$m" "$F" 10000 "$P" 200
		note "$m: $output"
		[ "$status" -eq 0 ]
		[[ "$output" =~ ^woke\ waited_ms=([0-9]+) ]]
		# It really waited for the append, 200 ms after it began.
		[ "${BASH_REMATCH[1]}" -ge 150 ]
		[[ "$output" == *"data=appended by "* ]]
	done
	for m in poll select epoll; do
		run "$PROBE" wait "$m" "$F" 300
		[ "$status" -eq 3 ]
		[[ "$output" == *timeout* ]]
	done

	# An append by the shell, after the probe said it is waiting.
	spawn ep "$PROBE" wait epoll "$F" 10000
	wait_for 10 grep -qx ready "$T/ep.out"
	echo "from the shell" >>"$P"
	wait_exit "$LAST" 10
	[ "$rc" -eq 0 ]
	grep -q 'data=from the shell$' "$T/ep.out"
}

# 48 threads polling one descriptor send concurrent POLL requests for one
# open file.  A hung daemon would hang the teardown too (the probe sits
# in an uninterruptible FUSE wait), so a probe that does not end in time
# is freed by killing the daemon before the test fails.
@test "concurrent poll() on one descriptor: all wake on an append, the daemon stays up" {
	echo "x" >>"$P"
	spawn pollers "$PROBE" pollers 48 200 "$F" "$P"
	if ! wait_for 20 gone "$LAST"; then
		note "the pollers did not finish in 20 s; the daemon is stuck:"
		note "$(timeout 10 gdb -p "$PID" -batch -ex 'thread apply all bt 6' 2>/dev/null |
			grep -E '^#[0-9].* in (tfs_|op_|poll_|collect_)' | sort | uniq -c | sort -rn | head -5)"
		crash_node
		false
	fi
	wait_exit "$LAST" 1
	note "$(cat "$T/pollers.out")"
	[ "$rc" -eq 0 ]
	grep -qx 'woke=48 of 48' "$T/pollers.out"
	[ "$(timeout 5 stat -c %s "$P")" -eq "$(xget end "$P")" ]
	wait_parked 0
}

@test "O_NONBLOCK read at the end fails with EAGAIN, then reads new data" {
	echo "x" >>"$P"
	run "$PROBE" wait nonblock "$F" 10000 "$P" 100
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = eagain ]
	[[ "${lines[1]}" == woke*"data=appended by "* ]]
	run "$PROBE" wait nonblock "$F" 200
	[ "$status" -eq 3 ]
	[ "${lines[0]}" = eagain ]
	parked_is 0
}

@test "SIGINT ends a blocked cat" {
	echo "x" >>"$P"
	handles=$(metric open_handles)
	# A background job of a non-interactive shell ignores SIGINT; give
	# cat the default action, as in an interactive foreground.
	spawn cat env --default-signal=INT cat "$F"
	wait_parked 1
	kill -INT "$LAST"
	wait_exit "$LAST" 5
	[ "$rc" -eq 130 ]	# killed by SIGINT
	wait_parked 0
	[ "$(metric open_handles)" -eq "$handles" ]
	[ "$(cat "$T/cat.out")" = x ]
}

@test "SIGINT to a read() with a handler gives EINTR; the descriptor still works; nothing leaks" {
	echo "x" >>"$P"
	handles=$(metric open_handles)
	spawn eintr "$PROBE" eintr "$F"
	wait_for 10 grep -qx ready "$T/eintr.out"
	wait_parked 1
	kill -INT "$LAST"
	wait_for 5 grep -qx eintr "$T/eintr.out"
	wait_for 5 grep -qx again "$T/eintr.out"
	wait_parked 1
	echo "after" >>"$P"
	wait_exit "$LAST" 5
	[ "$rc" -eq 0 ]
	grep -q 'data=after$' "$T/eintr.out"
	wait_parked 0
	[ "$(metric open_handles)" -eq "$handles" ]
	grep -q '"parked_reads": 0,' "$MNT/.topicfs/status"

	# Interrupts racing the parking of the read.
	run "$PROBE" interrupts 300 "$F"
	note "$output"
	[ "$status" -eq 0 ]
	wait_parked 0
	[ "$(metric open_handles)" -eq "$handles" ]
}

@test "500 parked followers all wake on one append while stat stays fast" {
	echo "seed" >>"$P"
	spawn many "$PROBE" many 500 "$F" "$MNT/.topicfs/metrics" "$P" 60000 "$T/go"
	local pid=$LAST
	wait_for 60 grep -qx 'parked 500' "$T/many.out"
	parked_is 500
	# Every request still gets answered at once while they wait.
	local i
	for i in $(seq 1 20); do
		timeout 5 stat "$P" >/dev/null
		timeout 5 ls "$MNT/t" >/dev/null
	done
	[ "$(timeout 5 head -c 4 "$P")" = seed ]
	touch "$T/go"
	wait_exit "$pid" 30
	while read -r l; do note "$l"; done <"$T/many.out"
	[ "$rc" -eq 0 ]
	grep -q '^woke 500 of 500 wrong=0 ' "$T/many.out"
	wait_parked 0
}

@test "SIGTERM with parked readers: readers get end of file, the daemon exits 0 promptly" {
	echo "x" >>"$P"
	spawn cat1 cat "$F"
	local c1=$LAST
	spawn cat2 cat "$F"
	local c2=$LAST
	spawn poll "$PROBE" wait poll "$F" 20000
	local pp=$LAST
	wait_parked 2
	wait_for 10 grep -qx ready "$T/poll.out"
	local t0 t1
	t0=$(date +%s%N)
	kill -TERM "$PID"
	reap_daemon
	t1=$(date +%s%N)
	note "daemon exited $(((t1 - t0) / 1000000)) ms after SIGTERM"
	[ $(((t1 - t0) / 1000000)) -lt 5000 ]
	wait_exit "$c1" 5
	[ "$rc" -eq 0 ]		# end of file
	wait_exit "$c2" 5
	[ "$rc" -eq 0 ]
	[ "$(cat "$T/cat1.out")" = x ]
	# The poller ends too, one way or another (POLLHUP, an error).
	wait_exit "$pp" 5
	note "poller: rc=$rc $(tr '\n' ' ' <"$T/poll.out")"
	! is_mounted "$MNT"
}

@test "fusermount3 -u with a parked reader is refused (EBUSY) and the reader goes on" {
	spawn cat cat "$F"
	wait_parked 1
	run fusermount3 -u "$MNT"
	[ "$status" -ne 0 ]
	[[ "$output" == *"busy"* ]]
	is_mounted "$MNT"
	echo "still here" >>"$P"
	wait_for 5 grep -qx "still here" "$T/cat.out"
}

# Lazy unmount detaches the mount at once, but the kernel keeps the
# connection until the last open file is closed, and a reader parked at
# the end of a .follow file never closes it unless the daemon ends its read.
@test "fusermount3 -u -z with parked readers: the readers end and the daemon exits 0" {
	echo "x" >>"$P"
	spawn cat cat "$F"
	local c=$LAST
	spawn block "$PROBE" wait block "$F" 20000
	local b=$LAST
	wait_parked 2
	fusermount3 -u -z "$MNT"
	! is_mounted "$MNT"
	wait_exit "$c" 10
	note "cat after lazy unmount: rc=$rc"
	wait_exit "$b" 10
	reap_daemon
}

@test "getattr reports the committed size after each append from another process" {
	local want=0 i line
	for i in $(seq 1 60); do
		line="record $i $(head -c $((i * 7)) /dev/zero | tr '\0' x)"
		sh -c 'printf "%s\n" "$1" >>"$2"' sh "$line" "$P"
		want=$((want + ${#line} + 1))
		[ "$(stat -c %s "$P")" -eq "$want" ]
		[ "$(stat -c %s "$F")" -eq "$want" ]
	done
	[ "$(ls -l "$P" | awk '{ print $5 }')" -eq "$want" ]
	[ "$(wc -c <"$P")" -eq "$want" ]
	[ "$(xget end "$P")" -eq "$want" ]
}
