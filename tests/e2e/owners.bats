#!/usr/bin/env bats
# Owners and permissions, as log shippers need them: a node mounted with
# allow_other, where programs that run as other users (nginx's workers,
# rsyslog after it drops privileges, an application's own user) append
# to partitions.
#
# What is asked of topicfs (docs/USAGE.md):
#  * the kernel enforces owner, group and mode (default_permissions,
#    which the daemon always adds): a user without write permission gets
#    EACCES, one with it may append;
#  * chown and chmod work on topics and partitions and persist across a
#    restart; a partition added later gets its topic's owner and group;
#  * a topic made by a user through allow_other is that user's;
#  * new topics are mkdir's mode (the caller's umask off) & ~umask,
#    partitions 0666 & ~umask (umask 022 unless -o umask=NNN, octal),
#    owned by the creator unless -o uid=N, gid=N say otherwise;
#  * append-only stays: truncation, O_TRUNC, writes without O_APPEND,
#    rename, unlink and link are EPERM for everyone, owner and root too.
#
# Users: nobody (65534, group nogroup 65534) and daemon (1, group 1),
# both in Debian's base-passwd; commands run as them with su or setpriv.

load helper
load contract

setup() {
	case "$BATS_TEST_DESCRIPTION" in
	*"uid=65534,gid=65534,umask=027"*)
		OPTS=allow_other,uid=65534,gid=65534,umask=027 ;;
	*"umask=002"*) OPTS=allow_other,umask=002 ;;
	*) OPTS=allow_other ;;
	esac
	require su setpriv stat
	setup_node -o "$OPTS"
	# The other users must reach the mount point inside $T.
	chmod 0755 "$T"
}

teardown() {
	teardown_node
}

restart() {
	stop_node
	start_node -o "$OPTS"
}

as_nobody() {
	su -s /bin/bash nobody -c "cd / && $1"
}

# uid 1, neither the owner nor in group nogroup.
as_daemon() {
	su -s /bin/bash daemon -c "cd / && $1"
}

# owner:group mode, numerically and as names.
perms() {
	stat -c '%U:%G %a' "$1"
}

# Runs CMD as nobody and as root: both must fail with EPERM.
eperm_for_all() {
	run as_nobody "$1"
	[ "$status" -ne 0 ] && [[ "$output" == *"Operation not permitted"* ]] ||
		{ echo "as nobody: $1: status $status: $output" >&2; return 1; }
	run bash -c "cd / && $1"
	[ "$status" -ne 0 ] && [[ "$output" == *"Operation not permitted"* ]] ||
		{ echo "as root: $1: status $status: $output" >&2; return 1; }
}

@test "chown to nobody: su nobody appends; append-only stays for the owner; owners and modes survive a restart" {
	mkdir "$MNT/app"
	echo "root 1" >>"$MNT/app/0"
	[ "$(perms "$MNT/app")" = "root:root 755" ]
	[ "$(perms "$MNT/app/0")" = "root:root 644" ]
	# Before: nobody may read, not append.
	[ "$(as_nobody "cat '$MNT/app/0'")" = "root 1" ]
	run as_nobody "echo nope >> '$MNT/app/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]

	chown nobody:nogroup "$MNT/app" "$MNT/app/0"
	[ "$(perms "$MNT/app")" = "nobody:nogroup 755" ]
	[ "$(perms "$MNT/app/0")" = "nobody:nogroup 644" ]
	su -s /bin/bash nobody -c "echo hi >> '$MNT/app/0'"
	as_nobody "printf 'nobody %d\n' 1 2 3 | tee -a '$MNT/app/0' >/dev/null"
	as_nobody "python3 -c 'open(\"$MNT/app/0\", \"a\").write(\"python\\n\")'"
	[ "$(cat "$MNT/app/0")" = "$(printf 'root 1\nhi\nnobody 1\nnobody 2\nnobody 3\npython')" ]

	# Append-only, whoever asks.
	eperm_for_all "truncate -s 0 '$MNT/app/0'"
	eperm_for_all "echo x > '$MNT/app/0'"
	eperm_for_all "mv '$MNT/app/0' '$MNT/app/9'"
	eperm_for_all "rm -f '$MNT/app/0'"
	eperm_for_all "ln '$MNT/app/0' '$MNT/app/9'"
	[ "$(wc -l <"$MNT/app/0")" -eq 6 ]

	chmod 0620 "$MNT/app/0"
	chmod 0750 "$MNT/app"
	[ "$(perms "$MNT/app/0")" = "nobody:nogroup 620" ]
	[ "$(perms "$MNT/app")" = "nobody:nogroup 750" ]
	# A partition added later is the topic's, mode 0666 & ~022.
	xset partitions 2 "$MNT/app"
	[ "$(perms "$MNT/app/1")" = "nobody:nogroup 644" ]
	as_nobody "echo one >> '$MNT/app/1'"

	restart
	[ "$(perms "$MNT/app")" = "nobody:nogroup 750" ]
	[ "$(perms "$MNT/app/0")" = "nobody:nogroup 620" ]
	[ "$(perms "$MNT/app/1")" = "nobody:nogroup 644" ]
	as_nobody "echo after restart >> '$MNT/app/0'"
	[ "$(tail -n 1 "$MNT/app/0")" = "after restart" ]
	[ "$(cat "$MNT/app/1")" = one ]
}

@test "the kernel checks: others get EACCES, a group member with g+w appends, the owner's chmod and xattrs count" {
	mkdir "$MNT/app"
	chown nobody:nogroup "$MNT/app" "$MNT/app/0"
	chmod 0640 "$MNT/app/0"
	echo secret >>"$MNT/app/0"

	run as_daemon "echo x >> '$MNT/app/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	run as_daemon "cat '$MNT/app/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]

	# uid 1 in group nogroup: g+w lets it append.
	chmod 0660 "$MNT/app/0"
	setpriv --reuid=1 --regid=1 --groups=65534 -- \
		bash -c "cd / && echo member >> '$MNT/app/0'"
	run as_daemon "echo x >> '$MNT/app/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]

	# Settings: the owner may change them, others may not.
	as_nobody "setfattr -n user.topicfs.retention.ms -v 1d '$MNT/app'"
	[ "$(xget retention.ms "$MNT/app")" = 86400000 ]
	run as_daemon "setfattr -n user.topicfs.retention.ms -v 2d '$MNT/app'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	[ "$(xget retention.ms "$MNT/app")" = 86400000 ]

	# Only root gives a file away; the owner sets its mode.
	run as_nobody "chown daemon '$MNT/app/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	as_nobody "chmod 0600 '$MNT/app/0'"
	[ "$(perms "$MNT/app/0")" = "nobody:nogroup 600" ]
	run setpriv --reuid=1 --regid=1 --groups=65534 -- \
		bash -c "cd / && echo member >> '$MNT/app/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	[ "$(cat "$MNT/app/0")" = "$(printf 'secret\nmember')" ]
}

@test "a topic made by nobody through allow_other is nobody's, also after a restart" {
	# A shared mount point, like /tmp: anyone may make a topic.
	chmod 1777 "$MNT"
	as_nobody "mkdir '$MNT/mine'"
	[ "$(perms "$MNT/mine")" = "nobody:nogroup 755" ]
	[ "$(perms "$MNT/mine/0")" = "nobody:nogroup 644" ]
	as_nobody "echo mine >> '$MNT/mine/0'"
	run as_daemon "echo theirs >> '$MNT/mine/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	echo root >>"$MNT/mine/0"
	restart
	[ "$(perms "$MNT/mine")" = "nobody:nogroup 755" ]
	[ "$(perms "$MNT/mine/0")" = "nobody:nogroup 644" ]
	as_nobody "echo again >> '$MNT/mine/0'"
	[ "$(cat "$MNT/mine/0")" = "$(printf 'mine\nroot\nagain')" ]
}

@test "mount options uid=65534,gid=65534,umask=027 give new topics and partitions their owner and mode" {
	mkdir "$MNT/app"
	[ "$(stat -c '%u:%g %a' "$MNT/app")" = "65534:65534 750" ]
	[ "$(stat -c '%u:%g %a' "$MNT/app/0")" = "65534:65534 640" ]
	xset partitions 2 "$MNT/app"
	[ "$(stat -c '%u:%g %a' "$MNT/app/1")" = "65534:65534 640" ]
	# Others may pass through the topic, not read or append.
	chmod 0751 "$MNT/app"
	as_nobody "echo from nobody >> '$MNT/app/0'"
	run as_daemon "echo x >> '$MNT/app/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	run as_daemon "cat '$MNT/app/0'"
	[ "$status" -ne 0 ]
	# Explicit chown and chmod win over the defaults, and persist.
	chown daemon "$MNT/app/1"
	chmod 0600 "$MNT/app/1"
	restart
	[ "$(stat -c '%u:%g %a' "$MNT/app")" = "65534:65534 751" ]
	[ "$(stat -c '%u:%g %a' "$MNT/app/0")" = "65534:65534 640" ]
	[ "$(stat -c '%u:%g %a' "$MNT/app/1")" = "1:65534 600" ]
	as_daemon "echo from daemon >> '$MNT/app/1'"
	[ "$(cat "$MNT/app/0")" = "from nobody" ]
	[ "$(cat "$MNT/app/1")" = "from daemon" ]
}

@test "mount option umask=002 alone: topics 0775, partitions 0664, the creator's; the group appends" {
	# mkdir's own umask applies too, as on any file system (the kernel
	# takes it off before the daemon sees the mode): none here.
	(umask 000 && mkdir "$MNT/app")
	[ "$(perms "$MNT/app")" = "root:root 775" ]
	[ "$(perms "$MNT/app/0")" = "root:root 664" ]
	setpriv --reuid=1 --regid=1 --groups=0 -- \
		bash -c "cd / && echo group root >> '$MNT/app/0'"
	run as_daemon "echo x >> '$MNT/app/0'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	[ "$(cat "$MNT/app/0")" = "group root" ]
}
