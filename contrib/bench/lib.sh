# Shell functions shared by the bench scripts (sourced; they define say()).

is_mounted() { grep -q " $1 fuse" /proc/mounts; }

# reap_fuse MNT PID NAME: unmount MNT (lazily if busy), wait up to 10 s for
# the daemon PID to exit (then kill it), and leave its exit status in
# REAPED_RC.
reap_fuse() {
	local mnt=$1 pid=$2 name=$3 i
	if is_mounted "$mnt"; then
		fusermount3 -u "$mnt" 2>/dev/null || {
			say "$name: $mnt busy; lazy unmount"
			fusermount3 -u -z "$mnt" 2>/dev/null
		}
	fi
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "$name (pid $pid) did not exit 10 s after unmount; killing it"
		kill -TERM "$pid" 2>/dev/null; sleep 1; kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	REAPED_RC=$?
}
