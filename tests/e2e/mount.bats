#!/usr/bin/env bats
# mount -t fuse.topicfs and /etc/fstab through Debian's mount.fuse3, for
# real.  mount(8) clears PATH, so mount.fuse3's shell finds topicfs only in
# its default path: each test runs in a private mount namespace whose
# /usr/local/sbin holds just a link to the topicfs under test.  The
# commands and the fstab line are the recipes of docs/OPERATIONS.md.

bats_require_minimum_version 1.5.0

load helper
load ops

setup() {
	require getfattr
	T=$(mktemp -d /tmp/tfs-e2e.XXXXXX)
	DATA=$T/data
	MNT=$T/mnt
	mkdir -p "$MNT"
	ns_start
}

teardown() {
	ns_teardown
}

# The argument vector the running daemon was given, one per line.
daemon_argv() {
	tr '\0' '\n' <"/proc/$(cat "$DATA/.lock")/cmdline"
}

# Whether the comma-separated list $1 has the item $2.
has_item() {
	case ",$1," in *",$2,"*) return 0 ;; esac
	return 1
}

@test "mount -t fuse.topicfs: mount returns once it serves, options reach topicfs, umount stops it" {
	printf 'num.partitions = 3\n' >"$T/topicfs.conf"
	in_ns sh -ec "$(recipe OPERATIONS.md mount-command)"
	# No waiting: mount returned, so the file system answers now.
	in_ns mkdir "$MNT/t"
	[ "$(in_ns ls "$MNT/t" | tr '\n' ' ')" = "0 1 2 " ]
	in_ns sh -c "echo hello >>'$MNT/t/0'"
	[ "$(in_ns cat "$MNT/t/0")" = hello ]
	run in_ns findmnt -n -o SOURCE,FSTYPE "$MNT"
	[ "$output" = "$DATA fuse.topicfs" ]
	opts=$(in_ns findmnt -n -o OPTIONS "$MNT")
	has_item "$opts" allow_other
	has_item "$opts" noatime
	has_item "$opts" default_permissions
	# What mount.fuse3 ran, exactly (Debian 12: util-linux 2.38, fuse3 3.14).
	run daemon_argv
	[ "${lines[0]}" = topicfs ]
	[ "${lines[1]}" = "$DATA" ]
	[ "${lines[2]}" = "$MNT" ]
	[ "${lines[3]}" = -o ]
	[ "${lines[4]}" = "rw,noatime,config=$T/topicfs.conf,allow_other,dev,suid" ]
	[ "${#lines[@]}" -eq 5 ]
	in_ns umount "$MNT"
	ns_wait_daemon_gone "$DATA"
	! ns_mounted "$MNT"
}

@test "fstab line: mount by mount point, a second mount refused, mount -a, findmnt --verify" {
	printf 'num.partitions = 2\n' >"$T/topicfs.conf"
	recipe OPERATIONS.md fstab >"$T/fstab"
	run findmnt --verify --tab-file "$T/fstab"
	[ "$status" -eq 0 ]
	in_ns mount -T "$T/fstab" "$MNT"
	ns_mounted "$MNT"
	in_ns mkdir "$MNT/t"
	in_ns sh -c "seq 1 100 >>'$MNT/t/1'"
	run in_ns mount -T "$T/fstab" "$MNT"
	[ "$status" -ne 0 ]
	[[ "$output" == *"$MNT is already mounted by a running topicfs"* ]]
	in_ns umount "$MNT"
	ns_wait_daemon_gone "$DATA"
	! ns_mounted "$MNT"
	in_ns mount -a -T "$T/fstab" -t fuse.topicfs
	ns_mounted "$MNT"
	[ "$(in_ns sh -c "seq 1 100 | cmp - '$MNT/t/1' && echo same")" = same ]
	in_ns umount "$MNT"
	ns_wait_daemon_gone "$DATA"
}

@test "what mount(8) and mount.fuse3 drop, expand and add before topicfs sees the options" {
	in_ns mount -t fuse.topicfs "$DATA" "$MNT" -o \
		num.partitions=2,_netdev,nofail,noauto,relatime,nodiratime,x-systemd.automount,comment=tfs,user
	opts=$(daemon_argv | sed -n 5p)
	for o in num.partitions=2 relatime nodiratime noexec nosuid nodev; do
		has_item "$opts" "$o" || { echo "no $o in $opts" >&2; false; }
	done
	# Dropped by mount(8): x-*, comment=; by mount.fuse3: _netdev, nofail,
	# noauto, user.  dev,suid are not added after nodev,nosuid.
	for o in _netdev nofail noauto user x-systemd.automount comment=tfs dev suid; do
		! has_item "$opts" "$o" || { echo "$o in $opts" >&2; false; }
	done
	in_ns mkdir "$MNT/t"
	[ "$(in_ns ls "$MNT/t" | tr '\n' ' ')" = "0 1 " ]
	fopts=$(in_ns findmnt -n -o OPTIONS "$MNT")
	has_item "$fopts" nosuid
	has_item "$fopts" noexec
	in_ns umount "$MNT"
	ns_wait_daemon_gone "$DATA"
}

@test "a failing mount prints topicfs's own reason: unknown option, bad config, data folder in use" {
	run in_ns mount -t fuse.topicfs "$DATA" "$MNT" -o bogus=1
	[ "$status" -ne 0 ]
	[[ "$output" == *"topicfs: unknown option 'bogus=1'"* ]]
	! ns_mounted "$MNT"
	printf 'flush.ms = banana\n' >"$T/bad.conf"
	run in_ns mount -t fuse.topicfs "$DATA" "$MNT" -o "config=$T/bad.conf"
	[ "$status" -ne 0 ]
	[[ "$output" == *"$T/bad.conf:1: flush.ms"* ]]
	! ns_mounted "$MNT"
	in_ns mount -t fuse.topicfs "$DATA" "$MNT"
	mkdir "$T/mnt2"
	run in_ns mount -t fuse.topicfs "$DATA" "$T/mnt2"
	[ "$status" -ne 0 ]
	[[ "$output" == *"in use by another topicfs (pid $(cat "$DATA/.lock"))"* ]]
	! ns_mounted "$T/mnt2"
	in_ns umount "$MNT"
	ns_wait_daemon_gone "$DATA"
}

@test "drop_privileges: mount.fuse3 mounts, topicfs serves /dev/fd/N without capabilities" {
	in_ns mount -t fuse.topicfs "$DATA" "$MNT" \
		-o drop_privileges,default_permissions,allow_other
	pid=$(cat "$DATA/.lock")
	run daemon_argv
	[[ "${lines[2]}" =~ ^/dev/fd/[0-9]+$ ]]
	grep -q '^CapEff:[[:space:]]*0000000000000000$' "/proc/$pid/status"
	grep -q '^CapBnd:[[:space:]]*0000000000000000$' "/proc/$pid/status"
	grep -q '^NoNewPrivs:[[:space:]]*1$' "/proc/$pid/status"
	in_ns mkdir "$MNT/t"
	in_ns sh -c "echo unprivileged >>'$MNT/t/0'"
	[ "$(in_ns cat "$MNT/t/0")" = unprivileged ]
	has_item "$(in_ns findmnt -n -o OPTIONS "$MNT")" default_permissions
	in_ns umount "$MNT"
	ns_wait_daemon_gone "$DATA"
}

@test "mount does not find a topicfs that is only on the caller's PATH" {
	for d in /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
		[ ! -e "$d/topicfs" ] || {
			echo "a topicfs is installed in $d: this test needs none" >&2
			false
		}
	done
	mkdir "$T/bin"
	mv "$T/sbin/topicfs" "$T/bin/topicfs"
	# 127: mount.fuse3's /bin/sh did not find it.
	PATH=$T/bin:$PATH run -127 in_ns mount -t fuse.topicfs "$DATA" "$MNT"
	[[ "$output" == *"topicfs: not found"* ]]
	! ns_mounted "$MNT"
}

@test "systemd-fstab-generator makes the fstab line a mount unit after /var/lib/topicfs's file system" {
	gen=/lib/systemd/system-generators/systemd-fstab-generator
	[ -x "$gen" ] || {
		echo "no $gen: apt-get install systemd" >&2
		false
	}
	recipe OPERATIONS.md fstab >"$T/fstab"
	unit=$(systemd-escape -p --suffix=mount "$MNT")
	mkdir "$T/gen"
	SYSTEMD_FSTAB=$T/fstab "$gen" "$T/gen" "$T/gen" "$T/gen" 2>/dev/null
	grep -qx "What=$DATA" "$T/gen/$unit"
	grep -qx "Type=fuse.topicfs" "$T/gen/$unit"
	grep -qx "RequiresMountsFor=$DATA" "$T/gen/$unit"
	# nofail: wanted by local-fs.target, not required.
	[ -L "$T/gen/local-fs.target.wants/$unit" ]
	[ ! -e "$T/gen/local-fs.target.requires/$unit" ]
	# _netdev moves it to remote-fs.target, after the network.
	sed 's/nofail,/nofail,_netdev,/' "$T/fstab" >"$T/fstab.net"
	rm -rf "$T/gen" && mkdir "$T/gen"
	SYSTEMD_FSTAB=$T/fstab.net "$gen" "$T/gen" "$T/gen" "$T/gen" 2>/dev/null
	[ -L "$T/gen/remote-fs.target.wants/$unit" ]
	[ ! -e "$T/gen/local-fs.target.wants/$unit" ]
}
