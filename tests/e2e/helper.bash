# Shared set-up for the end-to-end tests (bats).  Each test mounts its own
# node in its own temporary folder; nothing is shared between tests.
#
#   setup_node [topicfs options...]   mount a fresh node: $T $DATA $MNT $LOG
#   start_node [options...]           (re)start the daemon on $DATA at $MNT
#   stop_node                         unmount; the daemon must exit 0
#   crash_node                        kill -9 the daemon, clear the dead mount
#   teardown_node                     stop, scan the log for sanitizer
#                                     reports (ASan, UBSan, LSan, TSan),
#                                     remove the folder
#   wait_for SECONDS CMD...           poll CMD until it succeeds or fail
#
# TOPICFS_BUILD names the build folder (build/, build-asan/ or build-tsan/).

TOPICFS_BUILD=${TOPICFS_BUILD:-$(cd "$BATS_TEST_DIRNAME/../../build" && pwd)}
TOPICFS=$TOPICFS_BUILD/topicfs
TOOLS=$TOPICFS_BUILD/tests

# Fails (never skips) when something a test needs is missing.
require() {
	local c
	for c in "$@"; do
		if ! command -v "$c" >/dev/null 2>&1; then
			echo "missing command '$c': run contrib/install-deps.sh test" >&2
			return 1
		fi
	done
}

wait_for() {
	local secs=$1
	shift
	local deadline=$(($(date +%s%N) + secs * 1000000000))
	until "$@" >/dev/null 2>&1; do
		if [ "$(date +%s%N)" -gt "$deadline" ]; then
			echo "timed out after ${secs}s waiting for: $*" >&2
			return 1
		fi
		sleep 0.02
	done
}

is_mounted() {
	grep -qs " $1 fuse.topicfs " /proc/mounts
}

# Mounted and answering: a stale mount left by a killed daemon is listed
# in /proc/mounts but fails statfs (ENOTCONN).
mount_live() {
	is_mounted "$1" && stat -f "$1" >/dev/null 2>&1
}

daemon_alive() {
	kill -0 "$PID" 2>/dev/null
}

setup_node() {
	[ -x "$TOPICFS" ] || { echo "no $TOPICFS: run make first" >&2; return 1; }
	require fusermount3 getfattr setfattr
	T=$(mktemp -d /tmp/tfs-e2e.XXXXXX)
	DATA=$T/data
	MNT=$T/mnt
	LOG=$T/daemon.log
	mkdir -p "$MNT"
	start_node "$@"
}

start_node() {
	launch "$TOPICFS" -f "$@" "$DATA" "$MNT"
}

# Runs a daemon command line in the background ($PID) and waits until it
# has mounted $MNT and answers.
launch() {
	# fd 3 is bats' own: a daemon holding it would keep bats waiting.
	"$@" >>"$LOG" 2>&1 3>&- &
	PID=$!
	local deadline=$(($(date +%s) + 20))
	until mount_live "$MNT"; do
		if ! daemon_alive; then
			echo "topicfs exited before mounting; log:" >&2
			cat "$LOG" >&2
			return 1
		fi
		if [ "$(date +%s)" -gt "$deadline" ]; then
			echo "topicfs did not mount in 20s; log:" >&2
			cat "$LOG" >&2
			return 1
		fi
		sleep 0.02
	done
}

# Waits for the daemon to exit and checks its status.
reap_daemon() {
	local i=0
	while daemon_alive && [ $i -lt 1500 ]; do
		sleep 0.02
		i=$((i + 1))
	done
	if daemon_alive; then
		echo "topicfs did not exit after unmount" >&2
		kill -9 "$PID" 2>/dev/null
		return 1
	fi
	local rc=0
	wait "$PID" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "topicfs exited with status $rc; log:" >&2
		tail -50 "$LOG" >&2
		return 1
	fi
}

stop_node() {
	local i=0
	until fusermount3 -u "$MNT" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			echo "cannot unmount $MNT" >&2
			fusermount3 -u "$MNT"
			return 1
		fi
		sleep 0.05
	done
	reap_daemon
}

crash_node() {
	kill -9 "$PID" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
	fusermount3 -u -z "$MNT" 2>/dev/null || true
}

# ASan and LSan say "ERROR: ...Sanitizer", UBSan "runtime error:", TSan
# "WARNING: ThreadSanitizer: data race" (and "FATAL: ThreadSanitizer" when
# it cannot run at all).
check_log_clean() {
	if grep -E '(ERROR|WARNING|FATAL): (Address|Leak|Thread|Memory)Sanitizer|ThreadSanitizer: (reported|unexpected)|runtime error:|SUMMARY: (Address|Undefined|Thread)' "$LOG" >&2; then
		echo "sanitizer report in $LOG" >&2
		return 1
	fi
}

teardown_node() {
	local rc=0
	[ -n "${T:-}" ] || return 0
	if is_mounted "$MNT"; then
		stop_node || rc=1
	elif [ -n "${PID:-}" ] && daemon_alive; then
		kill -TERM "$PID"
		reap_daemon || rc=1
	fi
	check_log_clean || rc=1
	if [ $rc -ne 0 ]; then
		echo "--- daemon log ($LOG) ---" >&2
		tail -30 "$LOG" >&2
	fi
	rm -rf "$T"
	return $rc
}

# xattr helpers: print a value.
xget() {
	getfattr --only-values -n "user.topicfs.$1" "$2"
}

xset() {
	setfattr -n "user.topicfs.$1" -v "$2" "$3"
}

fsize() {
	stat -c %s "$1"
}

# flip FILE POS: xor the byte at POS with 0x01 (it must not be a newline),
# through the page cache, and fsync it: corruption at rest, as a test makes it.
flip() {
	python3 - "$1" "$2" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
pos = int(sys.argv[2])
b = os.pread(fd, 1, pos)
assert len(b) == 1 and b != b"\n", (pos, b)
os.pwrite(fd, bytes([b[0] ^ 1]), pos)
os.fsync(fd)
os.close(fd)
EOF
}
