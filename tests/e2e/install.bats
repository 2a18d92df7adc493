#!/usr/bin/env bats
# make install / make uninstall (DESTDIR, PREFIX), the man page, and the
# systemd units as systemd-analyze sees them.

load helper
load ops

setup() {
	require make man gzip
	T=$(mktemp -d /tmp/tfs-e2e.XXXXXX)
}

teardown() {
	rm -rf "$T"
}

# make in the source tree with the build under test; -o: never rebuild it
# (an ASan build must not be replaced by a plain one).
mk() {
	make --no-print-directory -C "$REPO" B="$TOPICFS_BUILD" \
		-o "$TOPICFS_BUILD/topicfs" -o "$TOPICFS_BUILD/topicfs-perf" "$@"
}

# The files (and links) under $1, relative, with their modes.
layout() {
	(cd "$1" && find . \( -type f -o -type l \) -printf '%m %P\n' | sort)
}

expected_docs() {
	local f
	for f in "$REPO"/README.md "$REPO"/docs/*.md; do
		[ -e "$f" ] && echo "644 usr/share/doc/topicfs/${f##*/}"
	done
}

@test "make install DESTDIR= PREFIX=/usr lays out the files where Debian expects them" {
	mk install DESTDIR="$T/root" PREFIX=/usr >"$T/install.out"
	{
		echo "644 etc/topicfs/topicfs.conf"
		echo "755 usr/bin/topicfs-perf"
		echo "644 usr/lib/systemd/system/topicfs.service"
		echo "755 usr/sbin/topicfs"
		expected_docs
		echo "644 usr/share/doc/topicfs/examples/mnt-log.mount"
		echo "644 usr/share/doc/topicfs/examples/topicfs.conf"
		echo "644 usr/share/doc/topicfs/examples/topicfs.service"
		echo "644 usr/share/man/man8/topicfs.8.gz"
	} | sort >"$T/expected"
	layout "$T/root" >"$T/actual"
	diff -u "$T/expected" "$T/actual"
	cmp "$REPO/etc/topicfs.conf" "$T/root/etc/topicfs/topicfs.conf"
	cmp "$TOPICFS" "$T/root/usr/sbin/topicfs"
	"$T/root/usr/sbin/topicfs" --version
	# The unit and the examples follow PREFIX.
	grep -qx 'ExecStart=/usr/sbin/topicfs -f -c /etc/topicfs/topicfs.conf -o takeover,allow_other /var/lib/topicfs /mnt/log' \
		"$T/root/usr/lib/systemd/system/topicfs.service"
	! grep -q /usr/local/sbin "$T/root/usr/lib/systemd/system/topicfs.service"
	zcat "$T/root/usr/share/man/man8/topicfs.8.gz" | grep -q '/usr/share/doc/topicfs'
	# gzip -n: no name or time stamp, so the page is reproducible.
	[ "$(od -An -tx1 -j4 -N4 "$T/root/usr/share/man/man8/topicfs.8.gz" | tr -d ' ')" = 00000000 ]
}

@test "make uninstall removes what install put; a modified config is kept, never overwritten" {
	mkdir -p "$T/root/usr/local/share/doc/other" "$T/root/etc"
	echo keep >"$T/root/usr/local/share/doc/other/README"
	echo keep >"$T/root/etc/other.conf"
	layout "$T/root" >"$T/before"
	mk install DESTDIR="$T/root" >/dev/null
	mk uninstall DESTDIR="$T/root" >/dev/null
	layout "$T/root" >"$T/after"
	diff -u "$T/before" "$T/after"
	[ ! -e "$T/root/etc/topicfs" ]
	[ ! -e "$T/root/usr/local/share/doc/topicfs" ]

	# An edited config survives install (the new one goes to .dist) and
	# uninstall (as dpkg keeps a conffile on remove).
	mk install DESTDIR="$T/root" >/dev/null
	conf=$T/root/etc/topicfs/topicfs.conf
	echo 'retention.ms = 1d' >>"$conf"
	edited=$(md5sum <"$conf")
	run mk install DESTDIR="$T/root"
	[ "$status" -eq 0 ]
	[[ "$output" == *"kept the modified $conf; the new example is $conf.dist"* ]]
	[ "$(md5sum <"$conf")" = "$edited" ]
	cmp "$REPO/etc/topicfs.conf" "$conf.dist"
	run mk uninstall DESTDIR="$T/root"
	[ "$status" -eq 0 ]
	[[ "$output" == *"kept $conf: it was modified"* ]]
	[ "$(md5sum <"$conf")" = "$edited" ]
	rm "$conf"
	rmdir "$T/root/etc/topicfs"
	layout "$T/root" >"$T/after"
	diff -u "$T/before" "$T/after"
}

@test "topicfs(8) renders with man -l without a warning, installed too, and man finds it" {
	run env MANWIDTH=80 man --warnings -l "$REPO/docs/topicfs.8"
	[ "$status" -eq 0 ]
	out=$(MANWIDTH=80 man --warnings -l "$REPO/docs/topicfs.8" 2>&1 >/dev/null)
	[ -z "$out" ] || { echo "$out" >&2; false; }
	[[ "$(MANWIDTH=80 man -l "$REPO/docs/topicfs.8" 2>/dev/null | col -b)" == *"MOUNTING WITH MOUNT(8) AND /ETC/FSTAB"* ]]
	mk install DESTDIR="$T/root" >/dev/null
	page=$T/root/usr/local/share/man/man8/topicfs.8.gz
	out=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
	[ -z "$out" ] || { echo "$out" >&2; false; }
	[ "$(man -M "$T/root/usr/local/share/man" -w topicfs)" = "$page" ]
	# whatis/apropos read the NAME section through lexgrog.
	[ "$(lexgrog "$page" | sed 's/^[^:]*: //')" = '"topicfs - a Kafka-like commit log mounted as a FUSE file system"' ]
}

@test "systemd-analyze verify accepts the installed unit and the .mount example" {
	require systemd-analyze
	# A real PREFIX (no DESTDIR), so that ExecStart= names a file that
	# exists and the man: link resolves.
	p=$T/prefix
	mk install PREFIX="$p" SYSCONFDIR="$T/etc" >/dev/null
	unit=$p/lib/systemd/system/topicfs.service
	grep -qx "ExecStart=$p/sbin/topicfs -f -c $T/etc/topicfs/topicfs.conf -o takeover,allow_other /var/lib/topicfs /mnt/log" "$unit"
	run env MANPATH="$p/share/man" systemd-analyze verify "$unit"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	cp "$p/share/doc/topicfs/examples/mnt-log.mount" "$T/mnt-log.mount"
	run env MANPATH="$p/share/man" systemd-analyze verify "$T/mnt-log.mount"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	# The hardening stays in place (4.3 when written; lower is better).
	run systemd-analyze security --offline=true "$unit"
	score=$(echo "$output" | sed -n 's/.*Overall exposure level for topicfs.service: \([0-9.]*\).*/\1/p')
	echo "exposure $score"
	[ -n "$score" ]
	awk -v s="$score" 'BEGIN { exit !(s <= 5.0) }'
	# Nothing that would give the service a private mount namespace, which
	# would hide its FUSE mount from every other process.
	! grep -E '^(ProtectSystem|ProtectHome|PrivateTmp|PrivateMounts|PrivateDevices|ReadWritePaths|ReadOnlyPaths|InaccessiblePaths|TemporaryFileSystem|BindPaths|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups|ProtectHostname|ProtectProc|RootDirectory|MountAPIVFS)=' "$unit"
}
