#!/usr/bin/env bats
# Owners and modes through a real mount with allow_other: other users'
# appends, chown and chmod, mkdir by a user, the uid/gid/umask keys,
# restarts, and log shippers that run as an unprivileged user (nginx's
# workers, rsyslog after privDropToUser).  Unprivileged processes run
# with setpriv (any uid, no passwd entry needed) or su for `nobody`.

load helper
load ops

setup() {
	setup_node -o allow_other
	# mktemp -d makes $T 0700: other users could not reach the mount.
	chmod 755 "$T"
	BG_PIDS=()
}

teardown() {
	local p
	for p in "${BG_PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null
	done
	for p in "${BG_PIDS[@]:-}"; do
		[ -n "$p" ] && wait_pid_gone "$p" 10
	done
	teardown_node
}

# Runs a shell command line as uid:gid (no supplementary groups).
as_user() {
	setpriv --reuid="$1" --regid="$2" --clear-groups bash -c "$3"
}

as_root() {
	bash -c "$1"
}

owner() {
	stat -c '%u:%g %a' "$1"
}

@test "a user's >> is EACCES on root's partition, works after chown to that user" {
	require su setpriv
	mkdir "$MNT/app"
	xset partitions 2 "$MNT/app"
	[ "$(owner "$MNT/app/0")" = "0:0 644" ]
	run su -s /bin/bash nobody -c "echo hi >> $MNT/app/0"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	[ "$(fsize "$MNT/app/0")" -eq 0 ]
	chown nobody "$MNT/app/0"
	[ "$(stat -c %U "$MNT/app/0")" = nobody ]
	su -s /bin/bash nobody -c "echo hi >> $MNT/app/0"
	[ "$(cat "$MNT/app/0")" = hi ]
	# That partition only: the other one and the directory keep root.
	[ "$(owner "$MNT/app/1")" = "0:0 644" ]
	[ "$(owner "$MNT/app")" = "0:0 755" ]
	# The .follow view shows the owner, without write bits.
	[ "$(owner "$MNT/app/.follow/0")" = "65534:0 444" ]
	[ "$(owner "$MNT/app/.follow")" = "0:0 555" ]
}

@test "chmod 666 lets anyone append; on 0644 a non-owner gets EACCES" {
	require setpriv
	mkdir "$MNT/app"
	chown 4242:4242 "$MNT/app/0"
	as_user 4242 4242 "echo owner >> $MNT/app/0"
	run as_user 4343 4343 "echo other >> $MNT/app/0"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	# Reading is allowed by 0644.
	[ "$(as_user 4343 4343 "cat $MNT/app/0")" = owner ]
	# The owner may chmod its partition (the kernel checks who may).
	as_user 4242 4242 "chmod 666 $MNT/app/0"
	[ "$(owner "$MNT/app/0")" = "4242:4242 666" ]
	as_user 4343 4343 "echo other >> $MNT/app/0"
	as_user 5555 5555 "echo third >> $MNT/app/0"
	[ "$(cat "$MNT/app/0")" = "$(printf 'owner\nother\nthird')" ]
	[ "$(owner "$MNT/app/.follow/0")" = "4242:4242 444" ]
	# A non-owner may not chmod or chown.
	run as_user 4343 4343 "chmod 600 $MNT/app/0"
	[ "$status" -ne 0 ]
	run as_user 4343 4343 "chown 4343 $MNT/app/0"
	[ "$status" -ne 0 ]
	[ "$(owner "$MNT/app/0")" = "4242:4242 666" ]
	# 0600: others may not even read.
	chmod 600 "$MNT/app/0"
	run as_user 4343 4343 "cat $MNT/app/0"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
}

@test "truncate is EPERM for the owner and root alike; so are special bits" {
	require setpriv python3
	mkdir "$MNT/app"
	echo keep >>"$MNT/app/0"
	chown 4242:4242 "$MNT/app/0"
	for who in "as_user 4242 4242" as_root; do
		run $who "truncate -s 0 $MNT/app/0"
		[ "$status" -ne 0 ]
		[[ "$output" == *"Operation not permitted"* ]]
		# truncate(2) on the path: a setattr of the size.
		run $who "python3 -c \"import os; os.truncate('$MNT/app/0', 0)\""
		[ "$status" -ne 0 ]
		[[ "$output" == *"Operation not permitted"* ]]
		run $who ": > $MNT/app/0"
		[ "$status" -ne 0 ]
		[[ "$output" == *"Operation not permitted"* ]]
	done
	[ "$(cat "$MNT/app/0")" = keep ]
	# Owners change nothing else either: no rename, no unlink.
	run as_user 4242 4242 "mv $MNT/app/0 $MNT/app/9"
	[ "$status" -ne 0 ]
	# A partition is no program: no set-user-ID, set-group-ID or sticky bit.
	for m in 4644 2644 1644; do
		run chmod "$m" "$MNT/app/0"
		[ "$status" -ne 0 ]
		[[ "$output" == *"Operation not permitted"* ]]
	done
	[ "$(owner "$MNT/app/0")" = "4242:4242 644" ]
	# touch is accepted and changes nothing.
	as_user 4242 4242 "touch $MNT/app/0"
}

@test "chown/chmod of a topic directory: that directory only; settings by its owner or root" {
	require setpriv
	mkdir "$MNT/app"
	chown 4242:4343 "$MNT/app"
	chmod 777 "$MNT/app"
	[ "$(owner "$MNT/app")" = "4242:4343 777" ]
	[ "$(owner "$MNT/app/0")" = "0:0 644" ]
	[ "$(owner "$MNT/app/.follow")" = "4242:4343 555" ]
	# The directory is writable by all, yet only the owner configures.
	run as_user 5555 5555 "setfattr -n user.topicfs.retention.ms -v 1d $MNT/app"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run as_user 5555 5555 "setfattr -n user.topicfs.partitions -v 3 $MNT/app"
	[ "$status" -ne 0 ]
	[ "$(xget partitions "$MNT/app")" = 1 ]
	# Reading settings stays open.
	[ "$(as_user 5555 5555 "getfattr --only-values -n user.topicfs.retention.ms $MNT/app")" = 604800000 ]
	as_user 4242 4242 "setfattr -n user.topicfs.retention.ms -v 1d $MNT/app"
	[ "$(xget retention.ms "$MNT/app")" = 86400000 ]
	xset retention.ms 2d "$MNT/app"
	[ "$(xget retention.ms "$MNT/app")" = 172800000 ]
	# Partitions added by growing get the directory's owner and 0666 & ~umask.
	as_user 4242 4242 "setfattr -n user.topicfs.partitions -v 3 $MNT/app"
	[ "$(owner "$MNT/app/0")" = "0:0 644" ]
	[ "$(owner "$MNT/app/1")" = "4242:4343 644" ]
	[ "$(owner "$MNT/app/2")" = "4242:4343 644" ]
	as_user 4242 4242 "echo mine >> $MNT/app/2"
	# A directory takes no set-user-ID bit; sticky and set-group-ID are fine.
	run chmod 4755 "$MNT/app"
	[ "$status" -ne 0 ]
	chmod 3775 "$MNT/app"
	[ "$(owner "$MNT/app")" = "4242:4343 3775" ]
	# .follow and .topicfs are views: chown and chmod change nothing.
	chmod 777 "$MNT/app/.follow/0"
	chown 4242 "$MNT/.topicfs/status" "$MNT/app/.follow"
	chmod 700 "$MNT/.topicfs"
	[ "$(owner "$MNT/app/.follow/0")" = "0:0 444" ]
	[ "$(owner "$MNT/app/.follow")" = "4242:4343 555" ]
	[ "$(owner "$MNT/.topicfs")" = "0:0 555" ]
	[ "$(owner "$MNT/.topicfs/status")" = "0:0 444" ]
	as_user 5555 5555 "cat $MNT/.topicfs/status" >/dev/null
	# So chown -R of a topic works, though it reaches .follow/<p> first.
	chown -R 6000:6001 "$MNT/app"
	[ "$(owner "$MNT/app")" = "6000:6001 3775" ]
	for p in 0 1 2; do
		[ "$(owner "$MNT/app/$p")" = "6000:6001 644" ]
		[ "$(owner "$MNT/app/.follow/$p")" = "6000:6001 444" ]
	done
}

@test "mkdir as nobody on a 1777 root makes nobody's topic; only its owner or root deletes it" {
	require su setpriv
	[ "$(owner "$MNT")" = "0:0 755" ]
	run su -s /bin/bash nobody -c "mkdir $MNT/mine"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	mkdir "$MNT/roots"
	chmod 1777 "$MNT"
	[ "$(owner "$MNT")" = "0:0 1777" ]
	su -s /bin/bash nobody -c "umask 022; mkdir $MNT/mine && echo from-nobody >> $MNT/mine/0"
	[ "$(stat -c '%U:%G %a' "$MNT/mine")" = "nobody:nogroup 755" ]
	[ "$(stat -c '%U:%G %a' "$MNT/mine/0")" = "nobody:nogroup 644" ]
	[ "$(cat "$MNT/mine/0")" = from-nobody ]
	# mkdir's mode and the caller's umask count, then the daemon's umask.
	as_user 4242 4242 "umask 077; mkdir $MNT/private"
	[ "$(owner "$MNT/private")" = "4242:4242 700" ]
	[ "$(owner "$MNT/private/0")" = "4242:4242 644" ]
	as_user 4242 4242 "umask 0; python3 -c \"import os; os.mkdir('$MNT/open', 0o777)\""
	[ "$(owner "$MNT/open")" = "4242:4242 755" ]
	# mkdir -m chmods what it made, as the owner may.
	as_user 4242 4242 "mkdir -m 1770 $MNT/exact"
	[ "$(owner "$MNT/exact")" = "4242:4242 1770" ]
	# Sticky: nobody else deletes a topic, root's included.
	run as_user 4242 4242 "rmdir $MNT/mine"
	[ "$status" -ne 0 ]
	run su -s /bin/bash nobody -c "rmdir $MNT/roots"
	[ "$status" -ne 0 ]
	[ -d "$MNT/mine" ] && [ -d "$MNT/roots" ]
	su -s /bin/bash nobody -c "rmdir $MNT/mine"
	[ ! -e "$MNT/mine" ]
	rmdir "$MNT/private" "$MNT/exact"
	# Without the sticky bit, anyone may delete in a 0777 root.
	chmod 0777 "$MNT"
	as_user 5555 5555 "rmdir $MNT/open"
	[ ! -e "$MNT/open" ]
}

@test "a set-group-ID root gives new topics its group" {
	require setpriv
	chgrp 4300 "$MNT"
	chmod 2777 "$MNT"
	as_user 4242 4242 "mkdir $MNT/shared"
	[ "$(owner "$MNT/shared")" = "4242:4300 2755" ]
	[ "$(owner "$MNT/shared/0")" = "4242:4300 644" ]
}

@test "owners and modes survive a restart" {
	require setpriv
	mkdir "$MNT/app"
	xset partitions 3 "$MNT/app"
	chmod 1777 "$MNT"
	chown 7:8 "$MNT"
	chown 4242:4243 "$MNT/app"
	chmod 750 "$MNT/app"
	chown 4244 "$MNT/app/0"
	chmod 640 "$MNT/app/1"
	as_user 4500 4501 "mkdir $MNT/users"
	stop_node
	start_node -o allow_other
	[ "$(owner "$MNT")" = "7:8 1777" ]
	[ "$(owner "$MNT/app")" = "4242:4243 750" ]
	[ "$(owner "$MNT/app/0")" = "4244:0 644" ]
	[ "$(owner "$MNT/app/1")" = "0:0 640" ]
	[ "$(owner "$MNT/app/2")" = "0:0 644" ]
	[ "$(owner "$MNT/users")" = "4500:4501 755" ]
	[ "$(owner "$MNT/users/0")" = "4500:4501 644" ]
	as_user 4500 4501 "echo after-restart >> $MNT/users/0"
	grep -q '"perm"' "$DATA/topics/app/topic.json"
	grep -qx 'root.mode 1777' "$DATA/meta"
}

@test "-o uid=,gid=,umask= set the root's and root's topics' owners and modes" {
	require setpriv
	stop_node
	start_node -o allow_other,uid=4242,gid=4243,umask=027
	[ "$(owner "$MNT")" = "4242:4243 755" ]
	[ "$(owner "$MNT/.topicfs")" = "4242:4243 555" ]
	mkdir "$MNT/app"
	[ "$(owner "$MNT/app")" = "4242:4243 750" ]
	[ "$(owner "$MNT/app/0")" = "4242:4243 640" ]
	xset partitions 2 "$MNT/app"
	[ "$(owner "$MNT/app/1")" = "4242:4243 640" ]
	as_user 4242 4243 "echo by-uid-key >> $MNT/app/1"
	# Group members read; others do not even reach the directory.
	[ "$(as_user 4300 4243 "cat $MNT/app/1")" = by-uid-key ]
	run as_user 4300 4300 "cat $MNT/app/1"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	# The root's owner may make topics in it; theirs are their own.
	as_user 4242 4243 "mkdir $MNT/own"
	[ "$(owner "$MNT/own")" = "4242:4243 750" ]
}

@test "invalid uid, gid and umask values stop the daemon with a clear error" {
	stop_node
	for bad in uid=4294967295 gid=-2 uid=nobody umask=0999 umask=1000 umask=x; do
		run "$TOPICFS" -f -o "$bad" "$DATA" "$MNT"
		[ "$status" -eq 1 ]
		echo "$output" | grep -E "^topicfs: -o ${bad%%=*}=.*: (.* is out of range|.* is not an (integer|octal mode))"
		! is_mounted "$MNT"
	done
	run "$TOPICFS" -f -o umask=0999 "$DATA" "$MNT"
	[[ "$output" == *"umask: '0999' is not an octal mode (e.g. 022)"* ]]
	run "$TOPICFS" -f -o uid=4294967295 "$DATA" "$MNT"
	[[ "$output" == *"uid: '4294967295' is out of range (must be -1 or between 0 and 4294967294)"* ]]
}

# --- log shippers that run as an unprivileged user ----------------------------

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Checks that FILE has exactly one line per request /r/1 .. /r/COUNT.
check_requests() {
	local file=$1 count=$2
	grep -o '"GET /r/[0-9]* ' "$file" | awk -v c="$count" '
		{ split($2, a, "/"); seen[a[3] + 0]++ }
		END {
			for (i = 1; i <= c; i++)
				if (seen[i] != 1) { bad++; if (!b1) b1 = i }
			if (NR != c || bad) {
				printf "%d request lines, wanted %d; %d wrong, first /r/%d\n", NR, c, bad, b1
				exit 1
			}
		}' >&2
}

# Whether nginx's error log FILE says "reopening logs" at least N times.
reopened() {
	[ "$(grep -c 'reopening logs' "$1")" -ge "$2" ]
}

# Whether process PID runs as user NAME.
runs_as() {
	[ "$(stat -c %U "/proc/$1")" = "$2" ]
}

@test "nginx: workers as nobody, reopen (logrotate's postrotate) chowns the log, every request once" {
	require nginx curl python3
	mkdir "$MNT/web"
	port=$(free_port)
	ng=$T/nginx
	mkdir -p "$ng/tmp"
	cat >"$ng/nginx.conf" <<EOF
user nobody nogroup;
worker_processes 2;
pid $ng/nginx.pid;
error_log $ng/error.log notice;
events { worker_connections 64; }
http {
    access_log '$MNT/web/0';
    client_body_temp_path $ng/tmp/body;
    proxy_temp_path $ng/tmp/proxy;
    fastcgi_temp_path $ng/tmp/fastcgi;
    uwsgi_temp_path $ng/tmp/uwsgi;
    scgi_temp_path $ng/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        location / { return 200 "ok\n"; }
    }
}
EOF
	nginx -t -q -p "$ng" -e "$ng/error.log" -c "$ng/nginx.conf"
	nginx -p "$ng" -e "$ng/error.log" -c "$ng/nginx.conf"
	wait_for 10 test -s "$ng/nginx.pid"
	BG_PIDS+=("$(cat "$ng/nginx.pid")")
	for i in $(seq 1 100); do
		curl -fsS "http://127.0.0.1:$port/r/$i" >/dev/null
	done
	[ "$(stat -c %U "$MNT/web/0")" = root ]
	# What Debian's /etc/logrotate.d/nginx runs after rotating.
	nginx -p "$ng" -e "$ng/error.log" -c "$ng/nginx.conf" -s reopen
	# The master's and both workers' "reopening logs".
	wait_for 10 reopened "$ng/error.log" 3 || {
		cat "$ng/error.log" >&2
		false
	}
	[ "$(stat -c %U "$MNT/web/0")" = nobody ]
	for i in $(seq 101 200); do
		curl -fsS "http://127.0.0.1:$port/r/$i" >/dev/null
	done
	wait_for 10 has_lines "$MNT/web/0" 200
	check_requests "$MNT/web/0" 200
	kill -QUIT "$(cat "$ng/nginx.pid")"
	wait_pid_gone "${BG_PIDS[0]}" 10
	if grep -E 'Permission denied|chown|\[(alert|crit|emerg)\]' "$ng/error.log"; then
		false
	fi
}

has_lines() {
	[ "$(wc -l <"$1")" -ge "$2" ]
}

@test "rsyslog: dropping privileges to nobody, it writes to a partition given to nobody" {
	require rsyslogd logger
	# Debian has no syslog user (Ubuntu's rsyslog drops to it): nobody.
	as_nobody() {
		sed -e 's/user.name="syslog"/user.name="nobody"/' \
		    -e 's/group.name="syslog"/group.name="nogroup"/' \
		    -e 's/chown syslog:syslog /chown nobody:nogroup /'
	}
	recipe RECIPES.md rsyslog-ruleset >"$T/60-topicfs.conf"
	# The standalone instance of the rsyslog recipe, dropping to nobody.
	{
		recipe RECIPES.md rsyslog-standalone
		recipe RECIPES.md rsyslog-privdrop | as_nobody
	} >"$T/rsyslog-standalone.conf"
	grep -q 'privdrop.user.name="nobody"' "$T/rsyslog-standalone.conf"
	mkdir -p "$T/rsyslog"
	chown nobody:nogroup "$T/rsyslog"	# its queue files
	script=$(recipe RECIPES.md rsyslog-privdrop-chown | as_nobody)
	grep -q 'chown nobody:nogroup' <<<"$script"
	(cd "$T" && bash -euo pipefail -c "$script") 3>&-
	[ "$(stat -c %U:%G "$MNT/syslog/0")" = nobody:nogroup ]
	cat "$T/rsyslog-standalone.conf" "$T/60-topicfs.conf" >"$T/rsyslog.conf"
	rsyslogd -N1 -f "$T/rsyslog.conf" >"$T/rsyslog-check.out" 2>&1 || {
		cat "$T/rsyslog-check.out" >&2
		false
	}
	rsyslogd -n -f "$T/rsyslog.conf" -i "$T/rsyslog.pid" >"$T/rsyslog.out" 2>&1 3>&- &
	BG_PIDS+=($!)
	wait_for 10 test -S "$T/rsyslog.sock"
	# It really runs as nobody.
	wait_for 10 runs_as "${BG_PIDS[0]}" nobody
	seq 1 500 | sed 's/^/message /' | logger -u "$T/rsyslog.sock" -t demo
	wait_for 30 has_lines "$MNT/syslog/0" 500
	[ "$(grep -cE '^[0-9T:.+-]+ [^ ]+ demo(\[[0-9]+\])?: message [0-9]+$' "$MNT/syslog/0")" -eq 500 ]
	[ "$(sed 's/.*message //' "$MNT/syslog/0" | sort -n | uniq | wc -l)" -eq 500 ]
	kill -TERM "${BG_PIDS[0]}"
	wait_pid_gone "${BG_PIDS[0]}" 10
	if grep -iE 'error|omfile|suspend|permission' "$T/rsyslog.out"; then
		false
	fi
}
