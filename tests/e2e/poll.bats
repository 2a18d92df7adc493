#!/usr/bin/env bats
# poll, epoll and select on a .follow file must tell the truth: readable
# when a read would return data (or end of file), not readable when it
# would give EAGAIN.  An event loop that is told "readable" and then gets
# EAGAIN spins, and socat gives up at once.  The case that broke:
# O_NONBLOCK, then lseek(SEEK_END), the usual way to follow only what
# comes next (socat seek-end=0, tail-like consumers).

load helper
load contract

setup() {
	setup_node
	mkdir "$MNT/t"
	BG_PIDS=()
}

teardown() {
	local p
	for p in "${BG_PIDS[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	teardown_node
}

@test "O_NONBLOCK .follow after lseek(SEEK_END): poll and epoll report nothing until data arrives" {
	seq 1 1000 | sed 's/^/old /' >>"$MNT/t/0"
	pyrun '
import select
p = mnt + "/t/.follow/0"
size = os.stat(mnt + "/t/0").st_size

# Data past the position: readable at once (the test can tell).
fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
pl = select.poll()
pl.register(fd, select.POLLIN)
assert pl.poll(5000) == [(fd, select.POLLIN)], "data is there: not readable?"
os.close(fd)

fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
assert os.lseek(fd, 0, os.SEEK_END) == size
pl = select.poll()
pl.register(fd, select.POLLIN)
ep = select.epoll()
ep.register(fd, select.EPOLLIN)
got = pl.poll(300)
assert got == [], "poll says %r at the end, yet a read gives EAGAIN" % got
got = ep.poll(0.3)
assert got == [], "epoll says %r at the end, yet a read gives EAGAIN" % got
r, _, _ = select.select([fd], [], [], 0.3)
assert r == [], "select says readable at the end"
expect("EAGAIN", os.read, fd, 100)

# Data arrives: readable, and the read returns exactly it.
w = os.open(mnt + "/t/0", os.O_WRONLY | os.O_APPEND)
os.write(w, b"new line\n")
os.close(w)
assert pl.poll(10000) == [(fd, select.POLLIN)], "appended, not readable"
assert ep.poll(10) == [(fd, select.EPOLLIN)], "appended, epoll not readable"
assert os.read(fd, 100) == b"new line\n"
# Read to the end again: not readable again.
assert pl.poll(300) == [], "readable after everything was read"
expect("EAGAIN", os.read, fd, 100)
os.close(fd)

# The same after a seek back into the data and a read to the end.  (Only
# lseek(SEEK_END) reaches the daemon, as a GETATTR with the file handle;
# SEEK_SET and SEEK_CUR stay in the kernel, so nothing is asked of poll
# right after them.)
fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
os.lseek(fd, size - 9, os.SEEK_SET)
assert os.read(fd, 1 << 20) == b"old 1000\nnew line\n"
pl = select.poll()
pl.register(fd, select.POLLIN)
assert pl.poll(300) == [], "readable at the end after reading"
os.close(fd)
print("ok")
'
}

# Waits until process PID has PATH open at byte POS (what lseek set).
at_position() {
	local pid=$1 path=$2 pos=$3 fd
	for fd in /proc/"$pid"/fd/*; do
		[ "$(readlink "$fd")" = "$path" ] || continue
		grep -qx "pos:[[:space:]]*$pos" "/proc/$pid/fdinfo/${fd##*/}" && return 0
	done
	return 1
}

@test "socat -u OPEN:.follow/0,seek-end=0,nonblock STDOUT keeps running and prints what is appended later" {
	require socat
	seq 1 1000 | sed 's/^/old /' >>"$MNT/t/0"
	size=$(fsize "$MNT/t/0")
	# Run directly (not under timeout) so that its pid is socat's own;
	# teardown stops it.
	(exec socat -u "OPEN:$MNT/t/.follow/0,seek-end=0,nonblock" \
		STDOUT >"$T/out" 2>"$T/err") 3>&- &
	pid=$!
	BG_PIDS+=("$pid")
	# socat has opened the file and seeked to its end; it must still be
	# waiting there (before the fix it read, got EAGAIN and exited 1).
	deadline=$(($(date +%s) + 20))
	until at_position "$pid" "$MNT/t/.follow/0" "$size"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "socat exited: $(cat "$T/err")" >&2
			false
		fi
		[ "$(date +%s)" -lt "$deadline" ] || {
			echo "socat never opened the file at its end" >&2
			false
		}
		sleep 0.02
	done
	echo "later line" >>"$MNT/t/0"
	wait_for 20 grep -q 'later line' "$T/out" || {
		echo "socat: $(cat "$T/err")" >&2
		false
	}
	echo "and another" >>"$MNT/t/0"
	wait_for 20 grep -q 'and another' "$T/out"
	# Only what came after the seek, and socat still runs.
	[ "$(cat "$T/out")" = "$(printf 'later line\nand another')" ]
	kill -0 "$pid"
	[ ! -s "$T/err" ]
}
