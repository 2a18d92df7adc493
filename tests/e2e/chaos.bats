#!/usr/bin/env bats
# Fault injection, Jepsen's way (docs/RELIABILITY.md): three nodes in
# network namespaces, a three-member etcd, a writer and a .follow reader
# on every node, and a seeded schedule of faults (tests/e2e/chaos.bash)
# for CHAOS_DURATION seconds; then the faults are healed, the replicas
# must converge, and tests/chaos/check.py counts the anomalies: any
# acknowledged record lost, a record twice, a writer's records out of
# order, replicas that differ, a reader that saw what is not in the final
# log, a torn record, a node that could not start again.  It fails on any.
#
# `make test` runs it for about two minutes; `make chaos` for ten
# (CHAOS_DURATION, CHAOS_SEED; results under CHAOS_RESULTS).
#
#   CHAOS_DURATION   seconds of faults (default 100)
#   CHAOS_SEED       the schedule's seed (default: random, printed)
#   CHAOS_KINDS      fault kinds to draw from (default: all of chaos.bash)
#   CHAOS_RESULTS    folder for <stamp>-seed<N>.json and .md (default: none)
#   CHAOS_WRITE_USEC a writer's pause between writes (default 2000)
#   CHAOS_DISK_MB    node 3's file system (default 512)

load helper
load cluster
load netns
load chaos

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
CHAOS_DURATION=${CHAOS_DURATION:-100}
CHAOS_WRITE_USEC=${CHAOS_WRITE_USEC:-2000}
CHAOS_DISK_MB=${CHAOS_DISK_MB:-512}

teardown() {
	chaos_teardown
}

@test "chaos: a seeded schedule of faults loses, doubles, reorders and forks nothing acknowledged" {
	local seed=${CHAOS_SEED:-$((($(date +%s%N) / 1000) % 1000000))}
	RANDOM=$seed
	cl_note "chaos: seed $seed, ${CHAOS_DURATION}s of faults"
	chaos_start
	ch_event run seed "$seed"
	sleep 3
	chaos_nemesis "$CHAOS_DURATION"
	chaos_finish
	local rc=0 out=$T/result stamp
	python3 "$REPO/tests/chaos/check.py" "$CH" --seed "$seed" \
		--duration "$CHAOS_DURATION" --json "$out.json" --md "$out.md" \
		>"$out.txt" 2>&1 || rc=$?
	while read -r line; do cl_note "$line"; done <"$out.txt"
	if [ -n "${CHAOS_RESULTS:-}" ]; then
		mkdir -p "$CHAOS_RESULTS"
		stamp=$(date -u +%Y%m%d-%H%M%S)
		cp "$out.json" "$CHAOS_RESULTS/$stamp-seed$seed.json"
		cp "$out.md" "$CHAOS_RESULTS/$stamp-seed$seed.md"
		cp "$CH/events.log" "$CHAOS_RESULTS/$stamp-seed$seed.events"
		cl_note "chaos: results in $CHAOS_RESULTS/$stamp-seed$seed.*"
	fi
	[ "$rc" -eq 0 ] || { cat "$out.txt" >&2; false; }
	# The run did something: acknowledged writes and faults.
	[ "$(jq '.acknowledged_writes' "$out.json")" -gt 1000 ]
	[ "$(jq '.faults_total' "$out.json")" -ge 1 ]
}
