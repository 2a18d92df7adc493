#!/usr/bin/env bats
# The five-line tour of the README, end to end.

load helper

setup() {
	setup_node
}

teardown() {
	teardown_node
}

@test "tour: mkdir, append, cat, tail -c, follow, status" {
	mkdir "$MNT/tweets"
	echo '{"user":1,"text":"hi"}' >>"$MNT/tweets/0"
	echo '{"user":2,"text":"yo"}' >>"$MNT/tweets/0"
	run cat "$MNT/tweets/0"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = '{"user":1,"text":"hi"}' ]
	[ "${lines[1]}" = '{"user":2,"text":"yo"}' ]
	[ "$(tail -c +24 "$MNT/tweets/0")" = '{"user":2,"text":"yo"}' ]
	[ "$(fsize "$MNT/tweets/0")" -eq 46 ]
	[ "$(xget records "$MNT/tweets/0")" = 2 ]
	run timeout 2 head -n 2 "$MNT/tweets/.follow/0"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	grep -q '"name": "tweets"' "$MNT/.topicfs/status"
	grep -q '^topicfs_partition_end_bytes{topic="tweets",partition="0"} 46$' \
		"$MNT/.topicfs/metrics"
}

@test "restart keeps every byte and offset" {
	mkdir "$MNT/t"
	for i in $(seq 1 100); do echo "line $i"; done >>"$MNT/t/0"
	before=$(md5sum <"$MNT/t/0")
	stop_node
	start_node
	[ "$(md5sum <"$MNT/t/0")" = "$before" ]
	[ "$(xget records "$MNT/t/0")" = 100 ]
	[ "$(xget offset.99 "$MNT/t/0")" = "$(($(fsize "$MNT/t/0") - 9))" ]
}
