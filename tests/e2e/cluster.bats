#!/usr/bin/env bats
# The cluster (issue: replication): each test is a real three-node
# cluster with one etcd on 127.0.0.1 (tests/e2e/cluster.bash).  A topic
# made on one node exists on all; writes on any node are forwarded to the
# partition's leader and every replica ends byte-identical; readers on
# another node see writes as they commit; the leader's death, two nodes'
# absence and etcd's absence each do what the design promises; peer
# requests must be signed.
#
# What is asserted about data, Jepsen's way: writers log every write()
# outcome outside the mounts (tests/tools/writer -a); afterwards every
# acknowledged record is in every replica exactly once, each writer's
# records are in its order, and a failed write's records appear at most
# once (a write that failed with EIO may still have been committed).
# Nothing is asserted about how long anything takes; every wait has a
# deadline (CL_WAIT, 30 s).
#
# Node options (cluster.bash): session.timeout.ms=2000,
# request.timeout.ms=5000, replica.lag.time.max.ms=2000; the topic
# defaults: replication factor 3, min.insync.replicas 2, acks all.
#
# What these tests (and netsplit.bats) assume of the daemon:
#  * `topicfs -f -o KEY=VALUE,... DATA MNT` with the cluster keys of
#    CONFIGURATION.md; the mount answers once started, membership may
#    complete later.  fusermount3 -u makes it exit 0 within 30 s, even
#    with etcd or peers unreachable.  After kill -9 (its dead mount
#    cleared with fusermount3 -u -z) it restarts on the same data.
#  * .topicfs/status: .node.mode "cluster", .node.id N; .cluster.etcd
#    "ok"|"unreachable", .cluster.lease "ok"|"expired", .cluster.nodes
#    [{id, address, alive}] (each node lists all three alive before a
#    test makes a topic); per partition role "leader"|"follower"|"none",
#    leader (id or null), epoch, replicas, isr (ids), end (the file
#    size).  A leader is "agreed" when every running node names it and it
#    says role "leader"; the ISR is read from the leader's status.
#  * xattrs user.topicfs.leader ("2"), .replicas and .isr ("1,2,3", any
#    order); topic xattrs read back normalized on every node.
#  * A write's errors are EIO (no leader, too few in-sync replicas, no
#    lease), on any node; a killed node's own mount fails with anything.
#  * After a failover the restarted node reports role "follower" and the
#    leader's epoch; after a healed partition the new leader stays leader
#    (no automatic move back) and the old one follows.
#  * POST /v1/append?topic=ID&partition=P&epoch=E&producer=HEX16&seq=0 on
#    the leader's listen address, signed as a follower (include/auth.h):
#    200 and the body committed; 401 and nothing appended otherwise.

load helper
load cluster

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

setup() {
	:
}

teardown() {
	local rc=0
	# A test of make cluster: its processes are not ours, stop them the
	# way a person would, then check their logs too.
	if [ -n "${T:-}" ] && [ -e "$T/demo/env" ]; then
		CLUSTER_DIR=$T/demo "$REPO/contrib/cluster.sh" stop >&2 || rc=1
		for log in "$T"/demo/n*/daemon.log; do
			[ -e "$log" ] || continue
			LOG=$log check_log_clean || rc=1
		done
	fi
	cluster_teardown || rc=1
	return $rc
}

# Whether node I holds N writer streams.
streams_are() {
	local n
	n=$(status_jq "$1" '.cluster.writer_streams')
	[ "$n" -eq "$2" ] || { echo "node $1: $n writer streams"; return 1; }
}

@test "cluster: a topic made on node 1 is on nodes 2 and 3, with its settings, growth and deletion" {
	cluster_start 3
	mkdir "$(on 1)/t"
	xset retention.ms 1h "$(on 1)/t"
	xset compression zstd "$(on 1)/t"
	for i in 2 3; do
		wait_for "$CL_WAIT" test -e "$(on "$i")/t/0"
		wait_value "$CL_WAIT" bash -c '[ "$(getfattr --only-values -n \
			user.topicfs.retention.ms "$1" 2>/dev/null)" = 3600000 ]' \
			_ "$(on "$i")/t"
		wait_value "$CL_WAIT" bash -c '[ "$(getfattr --only-values -n \
			user.topicfs.compression "$1" 2>/dev/null)" = zstd ]' \
			_ "$(on "$i")/t"
		status_jq "$i" -e '.topics[] | select(.name == "t") |
			.config["retention.ms"] == "3600000" and
			(.config.overridden | index("retention.ms") != null)' >/dev/null
	done
	l=$(wait_leader t 0)
	# Replication factor 3 by default: every node holds a replica, and
	# the xattrs say the same as the status on every node.
	for i in 1 2 3; do
		[ "$(part_replicas "$i" t 0)" = 1,2,3 ]
		[ "$(part_leader "$i" t 0)" = "$l" ]
		[ "$(xget leader "$(on "$i")/t/0")" = "$l" ]
		[ "$(xget replicas "$(on "$i")/t/0" | tr , '\n' | sort -n |
			paste -sd,)" = 1,2,3 ]
	done
	wait_isr_size t 0 3
	[ "$(xget isr "$(on "$l")/t/0" | tr , '\n' | sort -n | paste -sd,)" = 1,2,3 ]

	# Growth on node 2 reaches nodes 1 and 3; the new partitions have
	# leaders and replicate.
	xset partitions 4 "$(on 2)/t"
	for i in 1 3; do
		wait_for "$CL_WAIT" test -e "$(on "$i")/t/3"
	done
	for i in 1 2 3; do
		[ "$(status_jq "$i" '.topics[] | select(.name == "t") |
			.partition_count')" -eq 4 ]
	done
	for p in 1 2 3; do
		wait_leader t "$p"
		[ "$(part_replicas 1 t "$p")" = 1,2,3 ]
	done
	expect_write OK 3 t/3 "on partition 3"
	wait_same t/3
	[ "$(cat "$(on 1)/t/3")" = "on partition 3" ]
	# Node 3 holds a writer stream (producer id, sequence) for t/3.
	[ "$(status_jq 3 '.cluster.writer_streams')" -ge 1 ]

	# rmdir on node 3 removes t everywhere, and the writer streams of
	# its partitions with it.
	rmdir "$(on 3)/t"
	for i in 1 2 3; do
		wait_for "$CL_WAIT" test ! -e "$(on "$i")/t"
	done
	[ "$(status_jq 1 '[.topics[] | select(.name == "t")] | length')" -eq 0 ]
	wait_value "$CL_WAIT" streams_are 3 0

}

@test "cluster: writers on all three nodes into one partition: replicas identical, each writer in order, nothing lost or doubled" {
	cluster_start 3
	make_topic t
	pids=()
	for i in 1 2 3; do
		# Random write sizes from 1 byte to 64 KiB: lines split across
		# writes, writes carrying many lines, forwarded and local.
		"$TOOLS/writer" -c 1 -C 64K -l 40 -L 4K "$(on "$i")/t/0" "$i" 300 \
			2>"$T/writer.$i.err" &
		pids+=("$!")
	done
	for i in 0 1 2; do
		if ! wait_child "${pids[i]}" $((CL_WAIT * 4)); then
			cat "$T/writer.$((i + 1)).err" >&2
			false
		fi
	done
	# Every write returned after its commit: the leader's file has all of
	# them, and the followers get there.
	l=$(wait_leader t 0)
	size=$(stat -c %s "$(on "$l")/t/0")
	for i in 1 2 3; do
		wait_size "$i" t/0 "$size"
	done
	same_files t/0 1 2 3
	"$TOOLS/checkrecords" -W 3 -n 300 "$(on 2)/t/0"
	for i in 1 2 3; do
		[ "$(part_end "$i" t 0)" -eq "$size" ]
	done
}

@test "cluster: tail -f and .follow on node 3 see writes made on nodes 1 and 2" {
	cluster_start 3
	make_topic t
	bg_spawn tail tail -n +1 -s 0.1 -f "$(on 3)/t/0"
	bg_spawn follow cat "$(on 3)/t/.follow/0"
	expect_write OK 1 t/0 "from node 1"
	wait_for "$CL_WAIT" grep -qx "from node 1" "$T/tail.out"
	wait_for "$CL_WAIT" grep -qx "from node 1" "$T/follow.out"
	expect_write OK 2 t/0 "from node 2"
	wait_for "$CL_WAIT" grep -qx "from node 2" "$T/tail.out"
	wait_for "$CL_WAIT" grep -qx "from node 2" "$T/follow.out"
	expect_lines "from node 1" "from node 2"
	cmp "$T/expected" "$T/follow.out"
	cmp "$T/expected" "$(on 3)/t/0"
}

@test "cluster: write, fsync, write on a node that is not the leader: every call succeeds (an fsync takes no producer sequence)" {
	cluster_start 3
	make_topic t
	l=$(wait_leader t 0)
	f=$(first_other_than "$l")
	# A forwarded fsync once took a sequence number: the next forwarded
	# write then left a gap the leader refused, and failed with EIO.
	run python3 - "$(on "$f")/t/0" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
for i in range(4):
    os.write(fd, b"line %d\n" % i)
    os.fsync(fd)
os.write(fd, b"line 4\n")
os.close(fd)
print("OK")
EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = OK ]
	expect_lines "line 0" "line 1" "line 2" "line 3" "line 4"
	cmp "$T/expected" "$(on "$l")/t/0"
	wait_same t/0 1 2 3
}

@test "cluster: kill -9 the leader under writers: a new leader, writes go on, every acknowledged record once; it rejoins identical" {
	cluster_start 3
	make_topic t
	old=$(wait_leader t 0)
	for i in 1 2 3; do
		writer_start "$i" "$i" t/0 $WRITER_OPTS
	done
	for i in 1 2 3; do
		wait_acked "$i" 20
	done
	node_kill "$old"
	cl_note "killed leader $old"
	live=($(others_than "$old"))
	new=$(wait_new_leader t 0 "$old" "${live[@]}")
	cl_note "new leader $new"
	# Writes go on through the survivors, acknowledged after the change.
	for i in "${live[@]}"; do
		wait_acked "$i" $(($(acked "$i") + 20))
	done
	node_restart "$old"
	wait_isr_size t 0 3 >/dev/null
	writers_stop
	for i in "${live[@]}"; do
		[ "${W_RC[i]}" -eq 0 ] || { cat "$T/w$i.err" >&2; false; }
		[ -z "$(writer_other_errors "$i")" ] ||
			{ writer_other_errors "$i" >&2; false; }
	done
	# The killed node's writer lost its mount: whatever it had
	# acknowledged before must be there all the same.
	wait_same t/0 1 2 3
	run "$TOOLS/checkrecords" -g -A "1:$T/w1.ack" -A "2:$T/w2.ack" \
		-A "3:$T/w3.ack" "$(on "$old")/t/0"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	cl_note "$(grep '^acked' <<<"$output" | tr '\n' ';')"
	[ "$(part_role "$old" t 0)" = follower ]
	[ "$(part_epoch "$old" t 0)" = "$(part_epoch "$new" t 0)" ]
}

@test "cluster: a leader paused (SIGSTOP) stops nothing: writes forwarded to it go to the new leader while it is stopped; resumed, it follows" {
	# request.timeout.ms far above the wait: writes must move on because
	# one forward waits at most a session timeout, not because they fail.
	cluster_start 3 request.timeout.ms=60000
	make_topic t
	old=$(wait_leader t 0)
	live=($(others_than "$old"))
	for i in "${live[@]}"; do
		writer_start "$i" "$i" t/0 $WRITER_OPTS
	done
	for i in "${live[@]}"; do
		wait_acked "$i" 20
	done
	node_pause "$old"
	cl_note "paused leader $old"
	new=$(wait_new_leader t 0 "$old" "${live[@]}")
	for i in "${live[@]}"; do
		wait_acked "$i" $(($(acked "$i") + 20))
	done
	node_resume "$old"
	wait_isr_size t 0 3 >/dev/null
	writers_stop
	for i in "${live[@]}"; do
		[ "${W_RC[i]}" -eq 0 ] || { cat "$T/w$i.err" >&2; false; }
		[ -z "$(writer_other_errors "$i")" ] ||
			{ writer_other_errors "$i" >&2; false; }
	done
	wait_same t/0 1 2 3
	run "$TOOLS/checkrecords" -g -A "${live[0]}:$T/w${live[0]}.ack" \
		-A "${live[1]}:$T/w${live[1]}.ack" "$(on "$old")/t/0"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(part_role "$old" t 0)" = follower ]
	[ "$(part_leader "$old" t 0)" = "$new" ]
}

@test "cluster: min.insync.replicas 2 with two nodes down: writes fail with EIO, reads work; writes resume when one returns" {
	cluster_start 3
	make_topic t
	leader=$(wait_leader t 0)
	expect_write OK 1 t/0 before
	wait_same t/0 1 2 3
	# Keep a follower; stop the leader and the other follower.
	s=$(first_other_than "$leader")
	for i in 1 2 3; do
		if [ "$i" -ne "$s" ]; then
			node_stop "$i"
		fi
	done
	expect_lines before
	cmp "$T/expected" "$(on "$s")/t/0"
	expect_write EIO "$s" t/0 during-1
	# Reads go on, before and after the refused writes.
	head -1 "$(on "$s")/t/0" | grep -qx before
	# One node back: two in sync again, writes resume on both.
	node_restart "$leader"
	wait_isr_size t 0 2 "$s" "$leader" >/dev/null
	expect_write OK "$s" t/0 after-1
	expect_write OK "$leader" t/0 after-2
	for i in 1 2 3; do
		if [ "${NODE_STATE[i]}" = down ]; then
			node_restart "$i"
		fi
	done
	wait_isr_size t 0 3 >/dev/null
	wait_same t/0 1 2 3
	lines_check "$(on 1)/t/0" "before after-1 after-2" during-1
}

@test "cluster: etcd stopped: reads work, writes fail with EIO once the lease ran out; both resume when etcd is back" {
	cluster_start 3
	make_topic t
	expect_write OK 1 t/0 before
	wait_same t/0 1 2 3
	etcd_stop
	expect_lines before
	for i in 1 2 3; do
		cmp "$T/expected" "$(on "$i")/t/0"
	done
	lease_expired() {
		local i v
		for i in 1 2 3; do
			v=$(status_jq "$i" -r \
				'"\(.cluster.etcd) \(.cluster.lease)"') || return 1
			[ "$v" = "unreachable expired" ] ||
				{ echo "node $i: $v"; return 1; }
		done
	}
	wait_value "$CL_WAIT" lease_expired
	# All three at once: each fails after request.timeout.ms.
	for i in 1 2 3; do
		write_line "$i" t/0 "during-$i" >"$T/during.$i" &
		pids[i]=$!
	done
	for i in 1 2 3; do
		wait_child "${pids[i]}" $((CL_WAIT * 2))
		[ "$(cat "$T/during.$i")" = EIO ] ||
			{ echo "node $i: write said $(cat "$T/during.$i")" >&2; false; }
	done
	for i in 1 2 3; do
		head -1 "$(on "$i")/t/0" | grep -qx before
		status_jq "$i" -e '.topics[0].partitions[0].end >= 7' >/dev/null
	done
	etcd_start
	lease_ok() {
		local i v
		for i in 1 2 3; do
			v=$(status_jq "$i" -r \
				'"\(.cluster.etcd) \(.cluster.lease)"') || return 1
			[ "$v" = "ok ok" ] || { echo "node $i: $v"; return 1; }
		done
	}
	wait_value "$CL_WAIT" lease_ok
	wait_leader t 0 >/dev/null
	for i in 1 2 3; do
		expect_write OK "$i" t/0 "after-$i"
	done
	wait_same t/0 1 2 3
	lines_check "$(on 2)/t/0" "before after-1 after-2 after-3" \
		"during-1 during-2 during-3"
}

@test "cluster: a follower catching up a long backlog on one partition is not held back on another it shares a leader with" {
	# Fetch answers of at most 64 KiB: a 128 KiB batch fills one alone.
	cluster_start 3 replica.fetch.max.bytes=64K
	make_topic t
	xset partitions 4 "$(on 1)/t"
	for p in 0 1 2 3; do
		wait_leader t "$p" >/dev/null
	done
	# Two partitions led by the same node share one fetch session.
	local a='' b='' l='' p q
	for p in 0 1 2; do
		for q in $(seq $((p + 1)) 3); do
			if [ -z "$a" ] && [ "$(part_leader 1 t "$p")" = "$(part_leader 1 t "$q")" ]; then
				a=$p b=$q l=$(part_leader 1 t "$p")
			fi
		done
	done
	[ -n "$a" ] || { echo "no two partitions share a leader" >&2; false; }
	f=$(first_other_than "$l")
	node_stop "$f"
	# A backlog of 512 batches of 128 KiB on the first partition (the
	# fetch asks for partitions in order), then one line on the second.
	python3 - "$(on "$l")/t/$a" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
line = b"x" * 1023 + b"\n"
for i in range(512):
    os.write(fd, line * 128)
os.close(fd)
EOF
	expect_write OK "$l" "t/$b" "behind the backlog"
	enda=$(part_end "$l" t "$a")
	endb=$(part_end "$l" t "$b")
	node_start "$f"
	wait_value "$CL_WAIT" size_is "$f" "t/$b" "$endb" >/dev/null
	# The second partition caught up while the first still had most of
	# its backlog to copy (once, one answer in two is its).
	got=$(part_end "$f" t "$a")
	echo "partition $b caught up with partition $a at $got of $enda"
	[ "$got" -lt "$enda" ]
	wait_size "$f" "t/$a" "$enda"
	wait_same "t/$a" 1 2 3
	wait_same "t/$b" 1 2 3
}

@test "cluster: a peer append with a bad MAC, another secret, a stale time or a replay gets 401 and appends nothing" {
	cluster_start 3
	make_topic t
	expect_write OK 1 t/0 first
	wait_same t/0 1 2 3
	l=$(wait_leader t 0)
	from=$(first_other_than "$l")
	id=$(topic_id "$l" t)
	epoch=$(part_epoch "$l" t 0)
	url=http://127.0.0.1:${NODE_PORT[l]}
	target="/v1/append?topic=$id&partition=0&epoch=$epoch&producer=$(rand_hex 8)&seq=0"
	printf 'signed line\n' >"$T/body"
	printf 'forged line\n' >"$T/forged"

	# A wrong MAC (one digit changed).
	now=$(now_ms) nonce=$(rand_hex 8)
	mac=$(peer_mac "$T/secret" POST "$target" "$from" "$now" "$nonce" "$T/forged")
	bad=${mac:0:63}$(tr 0-9a-f 1-9a-f0 <<<"${mac:63}")
	[ "$(peer_request "$T/r1" "$url" POST "$target" "$from" "$now" \
		"$nonce" "$T/forged" "$bad")" = 401 ]
	# Signed with another cluster's secret.
	secret_make "$T/other"
	mac=$(peer_mac "$T/other" POST "$target" "$from" "$now" "$nonce" "$T/forged")
	[ "$(peer_request "$T/r2" "$url" POST "$target" "$from" "$now" \
		"$nonce" "$T/forged" "$mac")" = 401 ]
	# Correctly signed, but ten minutes old.
	old=$(($(now_ms) - 600000))
	[ "$(peer_request "$T/r3" "$url" POST "$target" "$from" "$old" \
		"$(rand_hex 8)" "$T/forged")" = 401 ]
	# No signature at all.
	[ "$(curl -s -m 10 -o /dev/null -w '%{http_code}' -H 'Expect:' \
		--data-binary "@$T/forged" "$url$target")" = 401 ]
	# The MAC covers the body: a signed request with another body.
	now=$(now_ms) nonce=$(rand_hex 8)
	mac=$(peer_mac "$T/secret" POST "$target" "$from" "$now" "$nonce" "$T/body")
	[ "$(peer_request "$T/r4" "$url" POST "$target" "$from" "$now" \
		"$nonce" "$T/forged" "$mac")" = 401 ]

	# The control: the same request, rightly signed, is taken ...
	now=$(now_ms) nonce=$(rand_hex 8)
	mac=$(peer_mac "$T/secret" POST "$target" "$from" "$now" "$nonce" "$T/body")
	code=$(peer_request "$T/r5" "$url" POST "$target" "$from" "$now" \
		"$nonce" "$T/body" "$mac")
	[ "$code" = 200 ] || { echo "valid request: $code $(cat "$T/r5")" >&2; false; }
	# ... once: its replay is refused.
	[ "$(peer_request "$T/r6" "$url" POST "$target" "$from" "$now" \
		"$nonce" "$T/body" "$mac")" = 401 ]

	# A write committed after all of them: nothing refused got in.
	expect_write OK 1 t/0 last
	wait_same t/0 1 2 3
	expect_lines first "signed line" last
	cmp "$T/expected" "$(on 3)/t/0"
}

@test "cluster: a forwarded write that failed cannot land after the writes that followed it (the producer's next epoch fences it)" {
	cluster_start 3
	make_topic t
	expect_write OK 1 t/0 first
	l=$(wait_leader t 0)
	from=$(first_other_than "$l")
	id=$(topic_id "$l" t)
	epoch=$(part_epoch "$l" t 0)
	url=http://127.0.0.1:${NODE_PORT[l]}
	# A stream (48 bits) at epoch 0 and at epoch 1 (the low 16 bits).
	stream=$(rand_hex 6)
	at() {
		echo "/v1/append?topic=$id&partition=0&epoch=$epoch&producer=$stream$1&seq=$2"
	}
	printf 'epoch 0 seq 0\n' >"$T/b0"
	printf 'epoch 1 seq 0\n' >"$T/b1"
	printf 'late epoch 0 seq 1\n' >"$T/late"
	[ "$(peer_request "$T/r0" "$url" POST "$(at 0000 0)" "$from" \
		"$(now_ms)" "$(rand_hex 8)" "$T/b0")" = 200 ]
	# The sender's next write failed (epoch 0, seq 1 never answered):
	# it goes on at epoch 1 from sequence 0.
	[ "$(peer_request "$T/r1" "$url" POST "$(at 0001 0)" "$from" \
		"$(now_ms)" "$(rand_hex 8)" "$T/b1")" = 200 ]
	# The failed write's request arrives now: refused (422), not appended.
	code=$(peer_request "$T/r2" "$url" POST "$(at 0000 1)" "$from" \
		"$(now_ms)" "$(rand_hex 8)" "$T/late")
	[ "$code" = 422 ] || { echo "late request: $code $(cat "$T/r2")" >&2; false; }
	expect_write OK 1 t/0 last
	wait_same t/0 1 2 3
	expect_lines first "epoch 0 seq 0" "epoch 1 seq 0" last
	cmp "$T/expected" "$(on 3)/t/0"
}

# A base port with PORT, +1 and +11..+13 free on 127.0.0.1.
demo_ports_free() {
	local p
	for p in 0 1 11 12 13; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$(($1 + p))") 2>/dev/null; then
			return 1
		fi
	done
}

@test "cluster: on a node without a replica, poll on .follow waits for the leader's data instead of spinning; lseek answers with its bounds" {
	cluster_start 3 default.replication.factor=1
	make_topic t
	leader=$(wait_leader t 0)
	other=$(first_other_than "$leader")
	[ "$(part_role "$other" t 0)" = none ]
	echo "before" >>"$(on "$leader")/t/0"
	wait_size "$other" t/0 7
	python3 - "$(on "$other")/t/.follow/0" "$(on "$leader")/t/0" <<'EOF'
import os, select, sys, threading, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
os.lseek(fd, 0, os.SEEK_END)
p = select.poll()
p.register(fd, select.POLLIN)
# Nothing new: two seconds of polling see nothing and wake rarely.
wakeups, t0 = 0, time.monotonic()
while time.monotonic() - t0 < 2:
    ev = p.poll(500)
    if ev:
        wakeups += 1
        try:
            os.read(fd, 4096)
            sys.exit("read data that was not there")
        except BlockingIOError:
            pass
assert wakeups <= 4, "poll woke %d times with nothing to read" % wakeups
def later():
    time.sleep(1)
    w = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND)
    os.write(w, b"after\n")
    os.close(w)
threading.Thread(target=later).start()
t0 = time.monotonic()
ev = p.poll(20000)
assert ev and ev[0][1] & select.POLLIN, ev
got = os.read(fd, 4096)
assert got == b"after\n", got
print("poll woke after %.2f s" % (time.monotonic() - t0))
# SEEK_DATA and SEEK_HOLE answer with the leader's bounds too.
assert os.lseek(fd, 0, os.SEEK_DATA) == 0
assert os.lseek(fd, 0, os.SEEK_HOLE) == 13
EOF
}

# Whether node I's copy of t/0 reads whole and equals node J's.
mended() {
	local out
	out=$(cmp "$(on "$1")/t/0" "$(on "$2")/t/0" 2>&1) ||
		{ echo "$out"; return 1; }
}

@test "cluster: a flipped byte in a sealed segment is never served and is mended from another replica, on a follower and on the leader" {
	cluster_start 3
	make_topic t
	xset segment.bytes 64K "$(on 1)/t"
	for i in 2 3; do
		wait_value "$CL_WAIT" bash -c '[ "$(getfattr --only-values -n \
			user.topicfs.segment.bytes "$1" 2>/dev/null)" = 65536 ]' \
			_ "$(on "$i")/t"
	done
	leader=$(wait_leader t 0)
	python3 - "$(on "$leader")/t/0" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
for b in range(60):
    os.write(fd, b"".join(b"line %05d %s\n" % (b * 50 + i, b"x" * 80)
                         for i in range(50)))
EOF
	wait_isr_size t 0 3 >/dev/null
	wait_same t/0
	seg=data/topics/t/0/00000000000000000000.log
	follower=$(first_other_than "$leader")
	third=$(others_than "$leader" | tail -1)

	# A follower's copy: the read there fails, never returns bad bytes;
	# the batch comes back from the leader.
	flip "$T/n$follower/$seg" 1000
	run cat "$(on "$follower")/t/0"
	[ "$status" -ne 0 ] && [[ "$output" == *"Input/output error"* ]]
	wait_value "$CL_WAIT" mended "$follower" "$leader"
	[ "$(part_jq "$follower" t 0 '.repaired_batches')" -ge 1 ]
	[ "$(status_jq "$follower" '.cluster.batches_repaired')" -ge 1 ]

	# The leader's copy: mended from a follower the same way.
	flip "$T/n$leader/$seg" 5000
	run cat "$(on "$leader")/t/0"
	[ "$status" -ne 0 ]
	wait_value "$CL_WAIT" mended "$leader" "$follower"
	[ "$(part_jq "$leader" t 0 '.repaired_batches')" -ge 1 ]

	# A replica starting empty copies from a leader whose batch is
	# damaged: it is refused the bad batch, and goes on once the leader
	# mended it from the third replica.
	node_stop "$third"
	rm -rf "$T/n$third/data"
	flip "$T/n$leader/$seg" 9000
	node_restart "$third"
	wait_isr_size t 0 3 >/dev/null
	wait_same t/0
	[ "$(part_jq "$leader" t 0 '.repaired_batches')" -ge 2 ]
}

@test "make cluster: three nodes and a tour that works, make cluster-stop ends it" {
	cluster_init
	local base i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		base=$((20000 + RANDOM % 20000))
		demo_ports_free "$base" && break
	done
	export CLUSTER_DIR=$T/demo CLUSTER_PORT=$base TOPICFS
	run make -C "$REPO" --no-print-directory cluster \
		B="$TOPICFS_BUILD" CLUSTER_DIR="$CLUSTER_DIR"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[[ "$output" == *"cd $CLUSTER_DIR"* ]]
	D=$CLUSTER_DIR
	for i in 1 2 3; do
		mountpoint -q "$D/n$i/mnt"
	done
	# The tour, as printed.
	mkdir "$D/n1/mnt/tweets"
	wait_for "$CL_WAIT" test -e "$D/n3/mnt/tweets/0"
	echo '{"user":1,"text":"hi"}' >>"$D/n1/mnt/tweets/0"
	wait_for "$CL_WAIT" grep -q '"user":1' "$D/n3/mnt/tweets/0"
	echo '{"user":2}' >>"$D/n2/mnt/tweets/0"
	run "$REPO/contrib/cluster.sh" status
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[[ "$output" == *"tweets/0"* ]]
	L=$(getfattr --only-values -n user.topicfs.leader "$D/n1/mnt/tweets/0")
	"$REPO/contrib/cluster.sh" kill "$L"
	fails mountpoint -q "$D/n$L/mnt"
	echo '{"user":3}' >>"$D/n$((L % 3 + 1))/mnt/tweets/0"
	"$REPO/contrib/cluster.sh" restart "$L"
	for i in 1 2 3; do
		wait_for "$CL_WAIT" grep -q '"user":3' "$D/n$i/mnt/tweets/0"
	done
	cmp "$D/n1/mnt/tweets/0" "$D/n2/mnt/tweets/0"
	cmp "$D/n1/mnt/tweets/0" "$D/n3/mnt/tweets/0"
	[ "$(wc -l <"$D/n1/mnt/tweets/0")" -eq 3 ]
	pids=$(cat "$D"/*.pid)
	run make -C "$REPO" --no-print-directory cluster-stop CLUSTER_DIR="$CLUSTER_DIR"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	for i in 1 2 3; do
		fails mountpoint -q "$D/n$i/mnt"
	done
	for p in $pids; do
		wait_for 10 pid_gone "$p"
	done
	[ -z "$(ls "$D"/*.pid 2>/dev/null)" ]
}
