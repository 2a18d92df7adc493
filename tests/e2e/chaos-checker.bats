#!/usr/bin/env bats
# The chaos checker (tests/chaos/check.py) itself: a clean run is clean,
# and each planted anomaly (a loss, a duplicate, a reorder, a divergence,
# a reader that saw what is not there, a torn line, a node that would not
# start) is reported, with its ids and offsets, and fails the check.

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
CHECK=$REPO/tests/chaos/check.py

setup() {
	D=$(mktemp -d /tmp/tfs-chk.XXXXXX)
	mkdir -p "$D/acks" "$D/readers" "$D/final"
}

teardown() {
	rm -rf "$D"
}

# rec W S: a record line of writer W, sequence S, whose length field
# counts the line and its newline (the checker does not check the CRC).
rec() {
	local p="payload$1x$2+/" len=0 l
	while :; do
		l="R $1 $2 $len 0badc0de $p"
		[ $((${#l} + 1)) -eq "$len" ] && break
		len=$((${#l} + 1))
	done
	printf '%s\n' "$l"
}

# A clean run: writers 1 and 2 acknowledged 0-2 each, all nodes hold the
# same log, a reader saw a prefix of it.
clean_run() {
	{
		rec 1 0; rec 2 0; rec 1 1; rec 2 1; rec 1 2; rec 2 2
	} >"$D/log"
	printf 'ok 0 0\nok 1 1\nok 2 2\n' >"$D/acks/w1.ack"
	printf 'ok 0 1\nerr 2 2 EIO\n' >"$D/acks/w2.ack"
	for i in 1 2 3; do cp "$D/log" "$D/final/n$i"; done
	head -c 50 "$D/log" >"$D/readers/r1.1"
	cp "$D/log" "$D/readers/r2.1"
	printf '1000 start kill-leader node 1\n1500 end kill-leader\n' >"$D/events.log"
}

count() {
	jq -r ".anomalies.$1.count" "$D/out.json"
}

@test "checker: a clean run has no anomaly and counts acknowledged appends and faults" {
	clean_run
	run python3 "$CHECK" "$D" --json "$D/out.json"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(jq .acknowledged_writes "$D/out.json")" -eq 4 ]
	[ "$(jq .failed_writes "$D/out.json")" -eq 1 ]
	[ "$(jq '.faults["kill-leader"]' "$D/out.json")" -eq 1 ]
	for k in lost duplicated reordered diverged reader torn restart; do
		[ "$(count $k)" -eq 0 ]
	done
}

@test "checker: an acknowledged record missing from the final log is lost, with its writer and seq" {
	clean_run
	grep -v '^R 1 1 ' "$D/log" >"$D/log2"
	for i in 1 2 3; do cp "$D/log2" "$D/final/n$i"; done
	: >"$D/readers/r2.1"
	run python3 "$CHECK" "$D" --json "$D/out.json"
	[ "$status" -eq 1 ]
	[ "$(count lost)" -eq 1 ]
	jq -e '.anomalies.lost.examples[0] == {"writer": 1, "seq": 1}' "$D/out.json"
	# A failed write's record missing is not a loss.
	[ "$(count duplicated)" -eq 0 ]
}

@test "checker: a record twice is duplicated, with both offsets" {
	clean_run
	{ cat "$D/log"; rec 2 1; } >"$D/log2"
	for i in 1 2 3; do cp "$D/log2" "$D/final/n$i"; done
	run python3 "$CHECK" "$D" --json "$D/out.json"
	[ "$status" -eq 1 ]
	[ "$(count duplicated)" -eq 1 ]
	jq -e '.anomalies.duplicated.examples[0].writer == 2 and
		.anomalies.duplicated.examples[0].seq == 1 and
		(.anomalies.duplicated.examples[0].offsets | length) == 2' "$D/out.json"
}

@test "checker: a writer's records out of order are reordered" {
	clean_run
	{ rec 1 0; rec 2 0; rec 1 2; rec 2 1; rec 1 1; rec 2 2; } >"$D/log2"
	for i in 1 2 3; do cp "$D/log2" "$D/final/n$i"; done
	: >"$D/readers/r1.1"; : >"$D/readers/r2.1"
	run python3 "$CHECK" "$D" --json "$D/out.json"
	[ "$status" -eq 1 ]
	[ "$(count reordered)" -eq 1 ]
	jq -e '.anomalies.reordered.examples[0] | .writer == 1 and .seq == 1 and .after_seq == 2' "$D/out.json"
	[ "$(count lost)" -eq 0 ]
}

@test "checker: replicas whose bytes differ diverged, with the first differing offset" {
	clean_run
	{ rec 1 0; rec 2 0; rec 1 1; rec 2 1; rec 2 2; rec 1 2; } >"$D/final/n3"
	run python3 "$CHECK" "$D" --json "$D/out.json"
	[ "$status" -eq 1 ]
	[ "$(count diverged)" -eq 1 ]
	# "R 1 2" against "R 2 2": the writer ids differ 2 bytes into the fifth.
	off=$(( $(rec 1 0 | wc -c) + $(rec 2 0 | wc -c) + $(rec 1 1 | wc -c) + $(rec 2 1 | wc -c) ))
	jq -e --argjson off "$off" '.anomalies.diverged.examples[0] |
		.node == "n3" and .first_difference == $off + 2' "$D/out.json"
}

@test "checker: a reader that saw bytes the final log does not hold there is reported" {
	clean_run
	{ rec 1 0; rec 1 1; } >"$D/readers/r3.1"
	run python3 "$CHECK" "$D" --json "$D/out.json"
	[ "$status" -eq 1 ]
	[ "$(count reader)" -eq 1 ]
	jq -e '.anomalies.reader.examples[0].reader == "r3.1"' "$D/out.json"
}

@test "checker: a torn line and a node that would not start are reported; no final copy is an error" {
	clean_run
	{ cat "$D/log"; echo "R 1 3 99 00000000 cut"; } >"$D/log2"
	for i in 1 2 3; do cp "$D/log2" "$D/final/n$i"; done
	echo "2000 anomaly restart node 2" >>"$D/events.log"
	run python3 "$CHECK" "$D" --json "$D/out.json" --md "$D/out.md"
	[ "$status" -eq 1 ]
	[ "$(count torn)" -eq 1 ]
	[ "$(count restart)" -eq 1 ]
	grep -q '^| fault | times |' "$D/out.md"
	rm -f "$D"/final/*
	run python3 "$CHECK" "$D"
	[ "$status" -eq 2 ]
	[[ "$output" == *"no final copies"* ]]
}
