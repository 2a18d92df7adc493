#!/usr/bin/env bats
# What users type reaches the daemon: names it refuses must not forge
# lines in its log, and values that only look valid must be refused.
#
#  * A rejected topic name is logged escaped (src/log.c: bytes below 0x20
#    but tab, and 0x7f, as \xHH; a backslash as \\), so a newline in a
#    name cannot start a line of its own.
#  * -1 is the only negative value: "-0" (and "-0ms", "-0K", "-00") is
#    refused on the command line, in the configuration file and as an
#    xattr, where it used to be taken as 0.

load helper
load contract

setup() {
	setup_node
}

teardown() {
	teardown_node
}

@test "mkdir of a name with a newline is EINVAL and the log shows it escaped, on one line" {
	forged='2026-01-01T00:00:00.000Z topicfs[1] error: forged line'
	run mkdir "$MNT/x"$'\n'"$forged"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
	run mkdir "$MNT/esc"$'\e[2J\r'"x"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
	[ "$(ls "$MNT")" = "" ]
	# Nothing starts a line but the daemon's own prefix.
	if awk -v f="$forged" 'index($0, f) == 1 { print; found = 1 }
		END { exit !found }' "$LOG"; then
		echo "a forged line reached the log" >&2
		false
	fi
	if grep -vnE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z topicfs\[[0-9]+\] [a-z]+: ' "$LOG"; then
		echo "a line without the daemon's prefix" >&2
		false
	fi
	# The name is there, escaped: \n or \x0a; and the terminal controls.
	grep -qE 'x(\\n|\\x0a)2026-01-01T00:00:00\.000Z topicfs\[1\] error: forged line' "$LOG"
	grep -qE 'esc(\\e|\\x1b|\\033)\[2J(\\r|\\x0d)x' "$LOG"
	if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$LOG"; then
		echo "a raw control byte reached the log" >&2
		false
	fi
}

@test "-0 is refused: -o retention.ms=-0 and a config file stop the daemon with a clear message" {
	stop_node
	mkdir -p "$T/mnt2"
	for o in retention.ms=-0 retention.ms=-0ms retention.bytes=-0K \
		retention.bytes=-00; do
		# Bounded: a daemon that wrongly starts is stopped by timeout.
		run timeout 10 "$TOPICFS" -f -o "$o" "$DATA" "$T/mnt2"
		if is_mounted "$T/mnt2"; then fusermount3 -u -z "$T/mnt2"; fi
		[ "$status" -eq 1 ] || { echo "$o: exit $status: $output" >&2; false; }
		[[ "$output" == *"-o $o: "*"is out of range (must be -1 or at least 0"* ]]
	done
	printf '[topicfs]\nretention.ms = -0\n' >"$T/minus0.conf"
	run timeout 10 "$TOPICFS" -f -c "$T/minus0.conf" "$DATA" "$T/mnt2"
	if is_mounted "$T/mnt2"; then fusermount3 -u -z "$T/mnt2"; fi
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/minus0.conf:2: retention.ms: '-0' is out of range"* ]]
	# A plain -1 still means "no limit".
	start_node -o retention.ms=-1,retention.bytes=-1
	mkdir "$MNT/t"
	[ "$(xget retention.ms "$MNT/t")" = -1 ]
	[ "$(xget retention.bytes "$MNT/t")" = -1 ]
}

@test "setfattr -v -0 (and -0ms, -00, -0K) is EINVAL and leaves the setting alone" {
	mkdir "$MNT/t"
	xset retention.ms 3d "$MNT/t"
	xset retention.bytes 1GiB "$MNT/t"
	for v in -0 -0ms -00 -0d -1ms; do
		run xset retention.ms "$v" "$MNT/t"
		[ "$status" -ne 0 ] || { echo "retention.ms=$v accepted" >&2; false; }
		[[ "$output" == *"Invalid argument"* ]]
	done
	for v in -0 -0K -0KiB -000 -1B; do
		run xset retention.bytes "$v" "$MNT/t"
		[ "$status" -ne 0 ] || { echo "retention.bytes=$v accepted" >&2; false; }
		[[ "$output" == *"Invalid argument"* ]]
	done
	[ "$(xget retention.ms "$MNT/t")" = 259200000 ]
	[ "$(xget retention.bytes "$MNT/t")" = 1073741824 ]
	xset retention.ms -1 "$MNT/t"
	[ "$(xget retention.ms "$MNT/t")" = -1 ]
}
