#!/usr/bin/env bats
# The cluster test harness itself (cluster.bash, netns.bash, the writer's
# acknowledged mode, contrib/cluster.sh's arguments), checked without a
# topicfs cluster: etcd brought up, stopped, killed and restarted on its
# data; namespaces, the bridge and iptables rules made and removed, with
# nothing changed in the root namespace; the openssl signing against the
# unit tests' vectors.  So a cluster test that fails points at the daemon.

load helper
load netns
load cluster

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

setup() {
	cluster_init
}

teardown() {
	cluster_teardown
}

@test "harness: etcd on free loopback ports stops, restarts on its data, survives kill -9" {
	etcd_start
	[[ "$ETCD_URL" == http://127.0.0.1:* ]]
	etcd_ctl put /h/k v1
	pid=$ETCD_PID
	etcd_stop
	fails kill -0 "$pid" 2>/dev/null
	fails etcd_healthy
	port=$ETCD_PORT
	etcd_start
	[ "$ETCD_PORT" = "$port" ]
	[ "$(etcd_ctl get --print-value-only /h/k)" = v1 ]
	etcd_ctl put /h/k v2
	etcd_kill
	fails etcd_healthy
	etcd_start
	[ "$(etcd_ctl get --print-value-only /h/k)" = v2 ]
	# A 1 s lease is granted (the short election timeout allows it).
	run etcd_ctl lease grant 1
	[ "$status" -eq 0 ]
	[[ "$output" == *"granted with TTL(1s)"* ]]
	etcd_pause
	fails etcd_healthy
	etcd_resume
	wait_for 10 etcd_healthy
}

@test "harness: the secret file is 0600 and holds 64 hex digits and a newline" {
	[ "$(stat -c %a "$T/secret")" = 600 ]
	[ "$(wc -c <"$T/secret")" -eq 65 ]
	grep -qxE '[0-9a-f]{64}' "$T/secret"
	other=$T/other
	secret_make "$other"
	fails cmp -s "$T/secret" "$other"
}

@test "harness: peer_mac reproduces the known answers of tests/unit/test_auth.c" {
	kat() {
		sed -n "s/^#define $1 \"\\([0-9a-f]*\\)\"/\\1/p" \
			"$REPO/tests/unit/test_auth.c"
	}
	kat1=$(kat KAT1_MAC)
	kat2=$(kat KAT2_MAC)
	[ ${#kat1} -eq 64 ] && [ ${#kat2} -eq 64 ]
	printf 'topicfs test secret, 32 bytes!!' >"$T/s"
	printf 'topicfs test secret, 32 bytes!!\n' >"$T/s-nl"
	printf 'hello\n' >"$T/b1"
	: >"$T/b2"
	[ "$(peer_mac "$T/s" POST '/v1/p/tweets/0/append?x=1' 7 \
		1700000000000 0123456789abcdef "$T/b1")" = "$kat1" ]
	# One trailing newline of the file is not part of the key.
	[ "$(peer_mac "$T/s-nl" POST '/v1/p/tweets/0/append?x=1' 7 \
		1700000000000 0123456789abcdef "$T/b1")" = "$kat1" ]
	[ "$(peer_mac "$T/s" GET /v1/fetch 4294967295 0 ffffffffffffffff \
		"$T/b2")" = "$kat2" ]
	# Anything else changes it.
	[ "$(peer_mac "$T/s" POST '/v1/p/tweets/0/append?x=2' 7 \
		1700000000000 0123456789abcdef "$T/b1")" != "$kat1" ]
}

# A node's status as the contract describes it (docs/STATUS.md, cluster
# mode): node I sees LEADER (or null) with ROLE, EPOCH, ISR and the live
# nodes ALIVE (a jq array of ids).
fake_status() {
	local i=$1 leader=$2 role=$3 epoch=$4 isr=$5 alive=$6
	mkdir -p "$T/f$i/.topicfs"
	NODE_MNT[i]=$T/f$i
	NODE_STATE[i]=up
	jq -n --argjson i "$i" --argjson l "$leader" --arg role "$role" \
		--argjson e "$epoch" --argjson isr "$isr" --argjson alive "$alive" '{
		node: { mode: "cluster", id: $i },
		cluster: { name: "c", etcd: "ok", lease: "ok",
			nodes: [1, 2, 3 | { id: ., address: "http://127.0.0.1:\(. + 7000)",
				alive: (. as $n | $alive | index($n) != null) }] },
		topics: [{ name: "t", id: 7, partition_count: 1, partitions: [{
			partition: 0, end: 10, role: $role, leader: $l, epoch: $e,
			replicas: [3, 1, 2], isr: $isr }] }]
	}' >"$T/f$i/.topicfs/status"
}

@test "harness: the status helpers read the contract's JSON: leaders agreed, ISR sizes, live nodes" {
	fake_status 1 1 leader 3 '[2,1]' '[1,2,3]'
	fake_status 2 1 follower 3 '[2,1]' '[1,2,3]'
	fake_status 3 null none 0 '[]' '[1,2]'
	[ "$(part_leader 1 t 0)" = 1 ]
	[ "$(part_leader 3 t 0)" = null ]
	[ "$(part_isr 1 t 0)" = 1,2 ]
	[ "$(part_replicas 2 t 0)" = 1,2,3 ]
	[ "$(part_epoch 1 t 0)" = 3 ]
	[ "$(part_role 2 t 0)" = follower ]
	[ "$(part_end 2 t 0)" = 10 ]
	[ "$(topic_id 2 t)" = 7 ]
	fails part_leader 1 t 1
	fails part_leader 1 u 0
	node_check_mode 2
	[ "$(agreed_leader t 0 1 2)" = 1 ]
	fails agreed_leader t 0
	fails agreed_leader t 0 2 3
	[ "$(isr_size_is t 0 2 1 2)" = 1,2 ]
	fails isr_size_is t 0 3 1 2
	nodes_alive_are 3 1 2
	fails nodes_alive_are 3
	fails leader_other_than t 0 1 1 2
	# Node 1 gone: 2 leads, epoch 4; node 3 agrees.
	NODE_STATE[1]=killed
	fake_status 2 2 leader 4 '[2,3]' '[2,3]'
	fake_status 3 2 follower 4 '[2,3]' '[2,3]'
	[ "$(leader_other_than t 0 1 2 3)" = 2 ]
	[ "$(wait_new_leader t 0 1)" = 2 ]
	[ "$(wait_isr_size t 0 2)" = 2,3 ]
	# Named leader that does not say so yet: not agreed.
	fake_status 2 2 follower 4 '[2,3]' '[2,3]'
	CL_WAIT=1 run wait_leader t 0
	[ "$status" -eq 1 ]
	[[ "$output" == *"does not say so"* ]]
	NODE_STATE=()	# no daemons behind these for teardown to stop
}

@test "harness: merge_opts keeps the last value of each key in first-seen order" {
	[ "$(merge_opts a=1,b=2 c=3 b=4 '' d=http://x:1)" = "a=1,b=4,c=3,d=http://x:1" ]
}

# The root namespace's packet filter rules (iptables, and nft's whole
# ruleset where nft is installed: install-deps does not need it).
root_ruleset() {
	iptables -S
	if command -v nft >/dev/null; then
		nft list ruleset
	fi
}

@test "harness: namespaces on a bridge, etcd in the hub, a node cut and healed, all removed" {
	root_rules=$(root_ruleset)
	root_links=$(ip -o link show | awk -F': ' '{ print $2 }' | sort)
	netns_setup 3
	for ns in "$NETNS_HUB" "${NETNS_NODE[@]}"; do
		[ -e "/run/netns/$ns" ]
	done
	[[ "$NETNS_HUB" == tfs-$$-* ]]
	ETCD_NS=$NETNS_HUB
	ETCD_HOST=$NETNS_HUB_ADDR
	etcd_start
	[ "$ETCD_URL" = "http://$NETNS_HUB_ADDR:2379" ]
	reach() {
		netns_run "${NETNS_NODE[$1]}" curl -s -m 1 "$ETCD_URL/health" |
			grep -q '"health":"true"'
	}
	for i in 1 2 3; do
		reach "$i"
	done
	# The test's own namespace cannot reach it: the network is private
	# (whatever answers there, if anything, is not this etcd).
	[ -z "$(curl -s -m 1 "$ETCD_URL/health" | grep '"health":"true"')" ]
	netns_cut 1
	fails reach 1
	reach 2
	netns_rules 1 | grep -q -- '-A INPUT -i eth0 -j DROP'
	netns_heal 1
	reach 1
	netns_block 2 "$NETNS_HUB_ADDR"
	fails reach 2
	reach 3
	netns_heal 2
	reach 2
	netns_loss 3 100
	fails reach 3
	netns_heal 3
	reach 3
	# The root namespace never saw a rule or an interface.
	[ "$(root_ruleset)" = "$root_rules" ]
	[ "$(ip -o link show | awk -F': ' '{ print $2 }' | sort)" = "$root_links" ]
	made=("${NETNS_MADE[@]}")
	etcd_stop
	netns_teardown
	for ns in "${made[@]}"; do
		[ ! -e "/run/netns/$ns" ]
	done
	[ -z "$(ip netns list | grep "^tfs-$$-")" ]
}

@test "harness: standalone daemons started, paused, killed, restarted and stopped by PID; writers and readers on them" {
	CL_STANDALONE=1
	etcd_start
	for i in 1 2 3; do
		node_start "$i"
	done
	[ "$(up_nodes)" = "1 2 3" ]
	mkdir "$(on 1)/t"
	writer_start 1 1 t/0 -C 4K -L 300 -u 1000
	bg_spawn tail tail -n +1 -s 0.1 -f "$(on 1)/t/0"
	wait_acked 1 20
	expect_write ENOENT 2 none/0 x
	node_pause 2
	[ "$(up_nodes)" = "1 3" ]
	node_resume 2
	pid=${NODE_PID[3]}
	node_kill 3
	[ "${NODE_STATE[3]}" = killed ]
	fails kill -0 "$pid" 2>/dev/null
	fails is_mounted "$(on 3)"
	node_restart 3
	mount_live "$(on 3)"
	node_stop 2
	fails is_mounted "$(on 2)"
	node_restart 2
	writers_stop
	[ "${W_RC[1]}" -eq 0 ]
	"$TOOLS/checkrecords" -g -A "1:$T/w1.ack" "$(on 1)/t/0"
	size=$(stat -c %s "$(on 1)/t/0")
	wait_size 1 t/0 "$size"
	[ "$(part_end 1 t 0)" -eq "$size" ]
	wait_for 10 cmp -s "$T/tail.out" "$(on 1)/t/0"
	fails same_files t/0 1 2
	# Teardown resumes a paused node before it unmounts it.
	node_pause 3
}

@test "harness: daemons started with nsenter run in their namespaces and their mounts are seen here" {
	CL_STANDALONE=1
	netns_setup 2
	ETCD_NS=$NETNS_HUB
	ETCD_HOST=$NETNS_HUB_ADDR
	etcd_start
	for i in 1 2; do
		node_start "$i"
	done
	[ "$(readlink "/proc/${NODE_PID[2]}/ns/net")" = \
		"$(netns_run "${NETNS_NODE[2]}" readlink /proc/self/ns/net)" ]
	[ "$(readlink "/proc/${NODE_PID[2]}/ns/mnt")" = "$(readlink /proc/self/ns/mnt)" ]
	mkdir "$(on 2)/t"
	expect_write OK 2 t/0 hello
	node_kill 1
	node_restart 1
	[ "$(cat "$(on 2)/t/0")" = hello ]
}

@test "harness: a node that ends by itself fails the test at teardown" {
	CL_STANDALONE=1
	etcd_start
	node_start 1
	kill -9 "${NODE_PID[1]}"
	run cluster_teardown
	[ "$status" -eq 1 ]
	[[ "$output" == *"ended by itself"* ]]
}

@test "harness: writer -a -e logs failed writes and goes on; checkrecords -g -A finds a lost acknowledged record" {
	run "$TOOLS/writer" -a "$T/full.ack" -e -u 1000 -C 2K /dev/full 5 20
	[ "$status" -eq 0 ]
	fails grep -q '^ok ' "$T/full.ack"
	grep -q '^err 0 [0-9]* ENOSPC$' "$T/full.ack"
	: >"$T/f"
	"$TOOLS/writer" -a "$T/f.ack" -C 2K -L 200 "$T/f" 3 300
	run "$TOOLS/checkrecords" -g -A "3:$T/f.ack" "$T/f"
	[ "$status" -eq 0 ]
	[[ "$output" == *"acked 3 ok 300 failed 0"* ]]
	sed 100d "$T/f" >"$T/lost"
	run "$TOOLS/checkrecords" -g -A "3:$T/f.ack" "$T/lost"
	[ "$status" -eq 1 ]
	[[ "$output" == *"acknowledged record 99 is missing"* ]]
	sed 100p "$T/f" >"$T/dup"
	run "$TOOLS/checkrecords" -g "$T/dup"
	[ "$status" -eq 1 ]
	[[ "$output" == *"(duplicate)"* ]]
	# A stop file ends a writer between records.
	: >"$T/g"
	"$TOOLS/writer" -a "$T/g.ack" -t "$T/stop" -u 2000 "$T/g" 4 100000000 &
	pid=$!
	BG+=("$pid")
	wait_for 20 grep -q '^ok ' "$T/g.ack"
	: >"$T/stop"
	reap_pid "$pid" 20
	bg_forget "$pid"
	[ "$REAPED_RC" -eq 0 ]
	"$TOOLS/checkrecords" -g -A "4:$T/g.ack" "$T/g"
}

@test "harness: contrib/cluster.sh refuses bad arguments and stops nothing that is not running" {
	run "$REPO/contrib/cluster.sh"
	[ "$status" -eq 2 ]
	[[ "$output" == *usage* ]]
	run "$REPO/contrib/cluster.sh" frobnicate
	[ "$status" -eq 2 ]
	run "$REPO/contrib/cluster.sh" kill
	[ "$status" -eq 2 ]
	CLUSTER_DIR=$T/none run "$REPO/contrib/cluster.sh" kill 9
	[ "$status" -ne 0 ]
	CLUSTER_DIR=$T/none run "$REPO/contrib/cluster.sh" stop
	[ "$status" -eq 0 ]
	[[ "$output" == *"not running"* ]]
	CLUSTER_DIR=$T/none run "$REPO/contrib/cluster.sh" status
	[ "$status" -eq 1 ]
	[[ "$output" == *"not running"* ]]
	CLUSTER_DIR=$T/none TOPICFS=$T/missing run "$REPO/contrib/cluster.sh" start
	[ "$status" -eq 1 ]
	[[ "$output" == *"make"* ]]
	[ ! -e "$T/none/etcd.pid" ]
}
