# Shared set-up for the operations tests (mount.bats, lifecycle.bats,
# install.bats, shippers.bats), loaded after helper.bash.
#
#   recipe FILE NAME           print the code block marked
#                              "<!-- recipe: NAME -->" in docs/FILE, with
#                              the documented paths replaced by the test's
#   ns_start                   a private mount namespace whose
#                              /usr/local/sbin holds only a link to the
#                              topicfs under test (mount(8) clears PATH)
#   in_ns CMD...               run CMD in it
#   ns_wait_daemon_gone DATA   wait until the daemon serving DATA exits
#   ns_teardown                unmount what is left, stop the namespace,
#                              scan the sanitizer logs, remove $T
#   wait_pid_gone PID SECS     wait for a process that is not our child
#   start_cmd CMD...           like start_node, but runs CMD... -f DATA MNT

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

recipe() {
	local file=$REPO/docs/$1 name=$2 text
	text=$(awk -v n="$name" '
		$0 == "<!-- recipe: " n " -->" { want = 1; next }
		want && /^```/ { if (inside) exit; inside = 1; next }
		inside { print }
	' "$file")
	if [ -z "$text" ]; then
		echo "no recipe '$name' in $file" >&2
		return 1
	fi
	printf '%s\n' "$text" | sed -e "s|/mnt/log|$MNT|g" \
		-e "s|/var/lib/topicfs|$DATA|g" \
		-e "s|/etc/topicfs/topicfs.conf|$T/topicfs.conf|g" \
		-e "s|/run/topicfs-demo|$T|g"
}

# A zombie counts as gone: a daemon started by mount(8) is reparented to
# PID 1, which may take a second or two to reap it.
pid_running() {
	local state
	state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
	[ -n "$state" ] && [ "$state" != Z ]
}

wait_pid_gone() {
	local pid=$1 secs=${2:-20}
	local deadline=$(($(date +%s%N) + secs * 1000000000))
	while pid_running "$pid"; do
		if [ "$(date +%s%N)" -gt "$deadline" ]; then
			echo "process $pid still running after ${secs}s" >&2
			return 1
		fi
		sleep 0.02
	done
}

# Daemons started by mount(8) are not our children and their stderr is
# /dev/null once detached: sanitizer reports go to files instead.
san_env() {
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T/san"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$T/san:print_stacktrace=1"
	export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}log_path=$T/san"
}

check_san_logs() {
	local f rc=0
	for f in "$T"/san.*; do
		[ -e "$f" ] || continue
		echo "--- sanitizer report $f ---" >&2
		cat "$f" >&2
		rc=1
	done
	return $rc
}

ns_start() {
	require unshare nsenter mount umount findmnt
	[ -x /sbin/mount.fuse3 ] || {
		echo "missing /sbin/mount.fuse3: apt-get install fuse3" >&2
		return 1
	}
	mkdir -p "$T/sbin"
	ln -sf "$TOPICFS" "$T/sbin/topicfs"
	san_env
	unshare --mount --propagation private -- sh -c \
		'mount --bind "$1/sbin" /usr/local/sbin && echo $$ >"$1/ns.pid" &&
		 exec sleep 3600' sh "$T" </dev/null >/dev/null 2>&1 3>&- &
	wait_for 10 test -s "$T/ns.pid"
	NS_PID=$(cat "$T/ns.pid")
}

# fd 3 is bats' own: a daemon that inherits it keeps bats waiting.
in_ns() {
	nsenter -t "$NS_PID" -m -- "$@" 3>&-
}

ns_mounted() {
	in_ns grep -qs " $1 fuse.topicfs " /proc/self/mounts
}

ns_wait_daemon_gone() {
	local pid
	pid=$(cat "$1/.lock" 2>/dev/null) || return 0
	[ -n "$pid" ] || return 0
	wait_pid_gone "$pid" 20
}

ns_teardown() {
	local rc=0 m
	[ -n "${T:-}" ] || return 0
	if [ -n "${NS_PID:-}" ] && kill -0 "$NS_PID" 2>/dev/null; then
		for m in $(in_ns awk '$3 == "fuse.topicfs" { print $2 }' \
			/proc/self/mounts); do
			case $m in "$T"/*) in_ns umount -l "$m" || rc=1 ;; esac
		done
		for m in "$T"/*/.lock; do
			[ -e "$m" ] && { ns_wait_daemon_gone "${m%/.lock}" || rc=1; }
		done
		kill "$NS_PID" 2>/dev/null
	fi
	check_san_logs || rc=1
	rm -rf "$T"
	return $rc
}

start_cmd() {
	launch "$@" -f "$DATA" "$MNT"
}
