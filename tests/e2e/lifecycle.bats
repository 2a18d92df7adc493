#!/usr/bin/env bats
# The daemon's life as systemd and scripts see it: readiness (sd_notify
# READY=1 / STOPPING=1, the daemon-mode readiness pipe), clean stops on
# signals, stale mounts after kill -9 and -o takeover, and a run under the
# capability bounding set and no_new_privs of contrib/topicfs.service.
# systemd is not PID 1 here: tests/tools/notify-listen stands in for its
# notification socket.

load helper
load ops

setup() {
	T=$(mktemp -d /tmp/tfs-e2e.XXXXXX)
	DATA=$T/data
	MNT=$T/mnt
	LOG=$T/daemon.log
	mkdir -p "$MNT"
	[ -x "$TOOLS/notify-listen" ] || {
		echo "no $TOOLS/notify-listen: run make" >&2
		return 1
	}
}

teardown() {
	[ -n "${LPID:-}" ] && kill "$LPID" 2>/dev/null
	[ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null
	check_san_logs || { teardown_node; return 1; }
	teardown_node
}

listen() {
	"$TOOLS/notify-listen" "$1" "$MNT" >"$T/notify.out" 2>&1 3>&- &
	LPID=$!
	wait_for 5 grep -q '^listening$' "$T/notify.out"
}

stale() {
	! stat "$MNT" >/dev/null 2>&1 &&
		stat "$MNT" 2>&1 | grep -q 'Transport endpoint is not connected'
}

@test "Type=notify: READY=1 from the main pid once the mount answers; SIGTERM sends STOPPING=1, unmounts, exits 0" {
	listen "$T/notify"
	NOTIFY_SOCKET=$T/notify start_node
	wait_for 10 grep -q '^mounted=' "$T/notify.out"
	cat "$T/notify.out"
	grep -qx "pid=$PID READY=1 STATUS=serving $DATA at $MNT" "$T/notify.out"
	grep -qx 'mounted=yes' "$T/notify.out"
	mkdir "$MNT/t"
	echo x >>"$MNT/t/0"
	kill -TERM "$PID"
	reap_daemon
	! is_mounted "$MNT"
	wait "$LPID"
	LPID=
	grep -qx "pid=$PID STOPPING=1 STATUS=closing the store" "$T/notify.out"
	[ "$(grep -c . "$T/notify.out")" -eq 4 ]
}

@test "an abstract NOTIFY_SOCKET (@name) works too, and umount also sends STOPPING=1" {
	name="@topicfs-test-$$-$RANDOM"
	listen "$name"
	NOTIFY_SOCKET=$name start_node
	wait_for 10 grep -qx 'mounted=yes' "$T/notify.out"
	grep -qx "pid=$PID READY=1 STATUS=serving $DATA at $MNT" "$T/notify.out"
	stop_node
	wait "$LPID"
	LPID=
	grep -qx "pid=$PID STOPPING=1 STATUS=closing the store" "$T/notify.out"
}

@test "SIGTERM on a busy mount: the .follow reader gets end of file, the mount goes, exit 0" {
	start_node
	mkdir "$MNT/t"
	echo first >>"$MNT/t/0"
	(cd "$MNT/t" && exec sleep 60) </dev/null >/dev/null 2>&1 3>&- &
	SPID=$!
	cat "$MNT/t/.follow/0" >"$T/follow.out" 3>&- &
	cpid=$!
	wait_for 5 grep -q first "$T/follow.out"
	run fusermount3 -u "$MNT"
	[ "$status" -ne 0 ]	# busy: what an ExecStop would run into
	kill -TERM "$PID"
	reap_daemon
	wait_pid_gone "$cpid" 10
	wait "$cpid"		# cat saw end of file, not an error
	! is_mounted "$MNT"
	[ "$(cat "$T/follow.out")" = first ]
	# The data is whole after the lazy unmount.
	kill "$SPID"
	SPID=
	start_node
	[ "$(cat "$MNT/t/0")" = first ]
}

@test "SIGINT and SIGHUP stop it cleanly too" {
	# bash starts background jobs with SIGINT ignored, and libfuse leaves
	# an ignored signal alone: give the daemon the default disposition, as
	# systemd or a terminal would.
	for sig in INT HUP; do
		start_cmd env --default-signal=INT "$TOPICFS"
		mkdir -p "$MNT/t"
		echo "$sig" >>"$MNT/t/0"
		kill "-$sig" "$PID"
		reap_daemon
		! is_mounted "$MNT"
	done
	start_node
	[ "$(cat "$MNT/t/0" | tr '\n' ' ')" = "INT HUP " ]
}

@test "kill -9 leaves a stale mount: a restart says so and exits 1; -o takeover replaces it, data intact" {
	start_node
	mkdir "$MNT/t"
	for i in $(seq 1 100); do echo "line $i"; done >>"$MNT/t/0"
	sync_before=$(md5sum <"$MNT/t/0")
	kill -9 "$PID"
	wait "$PID" || true
	stale
	msg="topicfs: $MNT is a stale mount left by a topicfs that died; unmount it with \`fusermount3 -u -z $MNT\`, or start with -o takeover"
	run "$TOPICFS" -f "$DATA" "$MNT"
	[ "$status" -eq 1 ]
	[ "$output" = "$msg" ]
	run "$TOPICFS" "$DATA" "$MNT"	# daemon mode: the same, from the parent
	[ "$status" -eq 1 ]
	[ "$output" = "$msg" ]
	stale
	start_node -o takeover
	# is_mounted is true at once: the stale mount is listed until the
	# daemon detaches it.  The topic appears with the new mount.
	wait_for 20 test -d "$MNT/t"
	grep -q "took over the stale mount at $MNT" "$LOG"
	[ "$(md5sum <"$MNT/t/0")" = "$sync_before" ]
	[ "$(xget records "$MNT/t/0")" = 100 ]
	# Only one topicfs mount is left at the mount point.
	[ "$(grep -c " $MNT fuse.topicfs " /proc/mounts)" -eq 1 ]
}

@test "a second topicfs at a mount point where one runs is refused" {
	start_node
	run "$TOPICFS" -f "$T/data2" "$MNT"
	[ "$status" -eq 1 ]
	[ "$output" = "topicfs: $MNT is already mounted by a running topicfs; unmount it first (\`umount $MNT\`)" ]
	[ "$(grep -c " $MNT fuse.topicfs " /proc/mounts)" -eq 1 ]
	[ ! -e "$T/data2" ]
}

@test "daemon mode: the parent exits 0 once the mount serves, 1 with the reason when the child fails" {
	san_env
	"$TOPICFS" "$DATA" "$MNT" 3>&-
	mkdir "$MNT/t"		# no waiting: the mount answers already
	echo ok >>"$MNT/t/0"
	pid=$(cat "$DATA/.lock")
	[ "$(ps -o ppid= -p "$pid" | tr -d ' ')" != "$$" ]
	mkdir "$T/mnt2"
	# The store is opened after the fork: the child's failure reaches the
	# parent through the readiness pipe.
	run "$TOPICFS" "$DATA" "$T/mnt2"
	[ "$status" -eq 1 ]
	[[ "$output" == *"in use by another topicfs (pid $pid)"* ]]
	! is_mounted "$T/mnt2"
	fusermount3 -u "$MNT"
	wait_pid_gone "$pid" 20
	! is_mounted "$MNT"
}

@test "the unit's confinement: CAP_SYS_ADMIN only and no_new_privs are enough, takeover included" {
	require setpriv
	confined=(setpriv --bounding-set=-all,+sys_admin --inh-caps=-all
		--no-new-privs "$TOPICFS")
	start_cmd "${confined[@]}" -c "$REPO/etc/topicfs.conf"
	grep -q '^CapEff:[[:space:]]*0000000000200000$' "/proc/$PID/status"
	grep -q '^NoNewPrivs:[[:space:]]*1$' "/proc/$PID/status"
	mkdir "$MNT/t"
	xset partitions 2 "$MNT/t"
	echo confined >>"$MNT/t/1"
	kill -9 "$PID"
	wait "$PID" || true
	stale
	start_cmd "${confined[@]}" -o takeover
	wait_for 20 test -d "$MNT/t"	# see the kill -9 test
	[ "$(cat "$MNT/t/1")" = confined ]
	kill -TERM "$PID"
	reap_daemon
	! is_mounted "$MNT"
}
