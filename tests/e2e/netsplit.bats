#!/usr/bin/env bats
# Network partitions: three nodes, each in its own network namespace on a
# bridge, etcd in the hub namespace (tests/e2e/netns.bash); a node is cut
# off with iptables DROP rules in its namespace, both ways, etcd
# included.  Writers on every node log each write()'s outcome outside the
# mounts; afterwards every acknowledged record is in every replica exactly
# once, in each writer's order, and the replicas are byte-identical.
# Nothing is asserted about how long anything takes.

load helper
load netns
load cluster

teardown() {
	cluster_teardown
}

lease_is() {
	local v
	v=$(status_jq "$1" -r '.cluster.lease') || return 1
	[ "$v" = "$2" ] || { echo "node $1: lease $v"; return 1; }
}

@test "netsplit: the cut-off leader stops acknowledging, the others elect a leader and go on; healed, it truncates and follows" {
	cluster_netns 3
	make_topic t
	old=$(wait_leader t 0)
	for i in 1 2 3; do
		writer_start "$i" "$i" t/0 $WRITER_OPTS
	done
	for i in 1 2 3; do
		wait_acked "$i" 20
	done
	netns_cut "$old"
	cl_note "cut off leader $old"
	live=($(others_than "$old"))
	new=$(wait_new_leader t 0 "$old" "${live[@]}")
	cl_note "new leader $new"
	# The cut-off node cannot renew its lease: once it knows the lease
	# ran out it acknowledges nothing, while the majority goes on.
	wait_value "$CL_WAIT" lease_is "$old" expired
	for i in "${live[@]}"; do
		wait_acked "$i" $(($(acked "$i") + 20))
	done
	frozen=$(acked "$old")
	expect_write EIO "$old" t/0 "written on the cut-off node"
	[ "$(acked "$old")" -eq "$frozen" ] ||
		{ echo "node $old acknowledged writes while cut off" >&2; false; }
	cl_note "uncommitted on node $old: $(part_jq "$old" t 0 '.log_end - .end') bytes"

	netns_heal "$old"
	# Healed: one leader for all three, the old one follows, all in sync.
	wait_isr_size t 0 3 >/dev/null
	[ "$(agreed_leader t 0)" = "$new" ]
	[ "$(part_role "$old" t 0)" = follower ]
	writers_stop
	for i in 1 2 3; do
		[ "${W_RC[i]}" -eq 0 ] || { cat "$T/w$i.err" >&2; false; }
		[ -z "$(writer_other_errors "$i")" ] ||
			{ writer_other_errors "$i" >&2; false; }
	done
	wait_same t/0 1 2 3
	run "$TOOLS/checkrecords" -x -g -A "1:$T/w1.ack" -A "2:$T/w2.ack" \
		-A "3:$T/w3.ack" "$(on "$old")/t/0"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	cl_note "$(grep '^acked' <<<"$output" | tr '\n' ';')"
	# The one line written by hand on the cut-off node failed: at most
	# once, never torn.
	[ "$(grep -c '^written on the cut-off node$' "$(on 1)/t/0")" -le 1 ]
}

@test "netsplit: a cut-off follower leaves the ISR and writes go on; healed, it catches up and rejoins" {
	cluster_netns 3
	make_topic t
	leader=$(wait_leader t 0)
	f=$(first_other_than "$leader")
	writer_start 1 "$leader" t/0 $WRITER_OPTS
	wait_acked 1 20
	netns_cut "$f"
	cl_note "cut off follower $f"
	others=($(others_than "$f"))
	wait_isr_size t 0 2 "${others[@]}" >/dev/null
	[ "$(agreed_leader t 0 "${others[@]}")" = "$leader" ]
	wait_acked 1 $(($(acked 1) + 20))
	netns_heal "$f"
	wait_isr_size t 0 3 >/dev/null
	writers_stop
	[ "${W_RC[1]}" -eq 0 ] || { cat "$T/w1.err" >&2; false; }
	[ -z "$(writer_other_errors 1)" ]
	wait_same t/0 1 2 3
	run "$TOOLS/checkrecords" -g -A "1:$T/w1.ack" "$(on "$f")/t/0"
	echo "$output" >&2
	[ "$status" -eq 0 ]
}
