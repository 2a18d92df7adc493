# The chaos suite's harness (tests/e2e/chaos.bats, `make chaos`), loaded
# after helper.bash, cluster.bash and netns.bash: three topicfs nodes, each
# in its own network namespace on a bridge, a three-member etcd in the hub
# namespace, writers and readers on every node's mount, and a nemesis that
# runs a seeded schedule of faults.  Everything it starts it stops by PID;
# every address is inside the namespaces it made.
#
#   chaos_start               etcd (3 members), nodes, topic t, writers,
#                             readers; node 3's data on a small loop ext4
#   chaos_nemesis SECS        faults until SECS have passed
#   chaos_finish              heal, restart, converge, stop the load and
#                             copy each node's final file
#   chaos_teardown            stop everything, unmount the loop file system
#
# Layout of a run ($CH, kept in $T/run): acks/w<ID>.ack (writer logs),
# readers/r<I>.<G> (reader outputs), final/n<I> (final copies), logs/
# (the writers' and readers' own messages), events.log
# (faults with their start and end, in ms since the epoch).  The checker,
# tests/chaos/check.py, reads that folder.
#
# Fault kinds (CHAOS_KINDS may name a subset):
#   kill-leader kill-follower kill-random  kill -9, restart after a hold
#   pause-leader         SIGSTOP for longer than session.timeout.ms
#   cut-leader cut-follower               the node isolated (iptables)
#   bridge               nodes A and B cannot talk, C talks to both
#   one-way              a node receives nothing but can send
#   loss                 30% of a node's packets dropped, both ways
#   etcd-member etcd-leader   one etcd member (or its leader) kill -9
#   bitflip              a byte of a sealed segment of one replica flipped
#   disk-full            node 3's file system filled, then freed
#   clock-skew           a node restarted with its wall clock 20 s ahead

CHAOS_ALL_KINDS="kill-leader kill-follower kill-random pause-leader
cut-leader cut-follower bridge one-way loss etcd-member etcd-leader bitflip
disk-full clock-skew"
FAKETIME_LIB=${FAKETIME_LIB:-/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1}

ch_now() {
	date +%s%3N
}

ch_event() {
	echo "$(ch_now) $*" >>"$CH/events.log"
	cl_note "chaos: $*"
}

# --- etcd: three members in the hub namespace ----------------------------

ch_etcd_launch() {
	local m=$1 peer=http://$ETCD_HOST:$((2378 + 2 * $1))
	local client=http://$ETCD_HOST:$((2377 + 2 * $1))
	ns_prefix "$ETCD_NS"
	"${NS_PRE[@]}" "$ETCD" --name "e$m" --data-dir "$T/etcd/e$m" \
		--listen-client-urls "$client" --advertise-client-urls "$client" \
		--listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
		--initial-cluster "$CH_ETCD_CLUSTER" \
		--initial-cluster-token "$CL_NAME" \
		--heartbeat-interval 50 --election-timeout 500 \
		--logger zap --log-outputs stderr --log-level warn \
		>>"$T/etcd/e$m.log" 2>&1 3>&- &
	CH_ETCD_PID[m]=$!
}

ch_etcd_healthy() {
	in_ns "$ETCD_NS" curl -s -m 2 "http://$ETCD_HOST:$((2377 + 2 * $1))/health" \
		2>/dev/null | grep -q '"health":"true"'
}

ch_etcd_start() {
	local m
	mkdir -p "$T/etcd"
	CH_ETCD_CLUSTER=
	ETCD_URL=
	for m in 1 2 3; do
		CH_ETCD_CLUSTER+="${CH_ETCD_CLUSTER:+,}e$m=http://$ETCD_HOST:$((2378 + 2 * m))"
		# ';': a comma would end the -o option.
		ETCD_URL+="${ETCD_URL:+;}http://$ETCD_HOST:$((2377 + 2 * m))"
	done
	for m in 1 2 3; do
		ch_etcd_launch "$m"
	done
	for m in 1 2 3; do
		wait_for 30 ch_etcd_healthy "$m" || {
			echo "etcd member $m did not become healthy" >&2
			tail -20 "$T/etcd/e$m.log" >&2
			return 1
		}
	done
}

ch_etcd_kill() {
	kill -9 "${CH_ETCD_PID[$1]}" 2>/dev/null || true
	reap_pid "${CH_ETCD_PID[$1]}" 10 || true
	CH_ETCD_PID[$1]=
}

ch_etcd_stop_all() {
	local m
	for m in "${!CH_ETCD_PID[@]}"; do
		[ -n "${CH_ETCD_PID[m]}" ] || continue
		kill -TERM "${CH_ETCD_PID[m]}" 2>/dev/null || true
		reap_pid "${CH_ETCD_PID[m]}" 10 || ch_etcd_kill "$m"
		CH_ETCD_PID[m]=
	done
}

# The member number (1-3) that leads etcd now, or nothing.
ch_etcd_leader() {
	local m out
	for m in 1 2 3; do
		[ -n "${CH_ETCD_PID[m]:-}" ] || continue
		out=$(in_ns "$ETCD_NS" env ETCDCTL_API=3 etcdctl \
			--endpoints "http://$ETCD_HOST:$((2377 + 2 * m))" \
			--dial-timeout 2s --command-timeout 3s endpoint status \
			-w json 2>/dev/null) || continue
		if echo "$out" | jq -e '.[0].Status.leader == .[0].Status.header.member_id' \
			>/dev/null 2>&1; then
			echo "$m"
			return 0
		fi
	done
	return 1
}

# --- load: writers and readers ---------------------------------------------

# A writer on node I's mount: one record per write(), every outcome logged.
ch_writer_start() {
	local i=$1 id
	CH_GEN[i]=$((${CH_GEN[i]:-0} + 1))
	id=$((i * 1000 + CH_GEN[i]))
	"$TOOLS/writer" -a "$CH/acks/w$id.ack" -e -t "$CH/stop" \
		-c 1 -C 1 -l 40 -L 300 -u "$CHAOS_WRITE_USEC" \
		"${NODE_MNT[i]}/t/0" "$id" 100000000 \
		>"$CH/logs/w$id.out" 2>"$CH/logs/w$id.err" 3>&- &
	CH_WPID[i]=$!
	BG+=("$!")
	# A reader streaming .follow from the start.
	cat "${NODE_MNT[i]}/t/.follow/0" >"$CH/readers/r$i.${CH_GEN[i]}" \
		2>"$CH/logs/r$i.${CH_GEN[i]}.err" 3>&- &
	CH_RPID[i]=$!
	BG+=("$!")
}

# Ends node I's writer and reader (their node is gone or going).
ch_load_stop() {
	local i=$1 pid
	for pid in "${CH_WPID[i]:-}" "${CH_RPID[i]:-}"; do
		[ -n "$pid" ] || continue
		kill -9 "$pid" 2>/dev/null || true
		reap_pid "$pid" 10 && bg_forget "$pid"
	done
	CH_WPID[i]= CH_RPID[i]=
}

# Acknowledged appends so far, over every writer.
ch_acked() {
	cat "$CH"/acks/*.ack 2>/dev/null | awk '$1 == "ok" { n++ } END { print n + 0 }'
}

# --- start -----------------------------------------------------------------

ch_loop_setup() {
	local disk=$T/n3/disk
	mkdir -p "$disk"
	truncate -s "${CHAOS_DISK_MB}M" "$T/n3.img"
	mkfs.ext4 -q -F "$T/n3.img"
	mount -o loop "$T/n3.img" "$disk"
	CH_LOOP=$disk
	mkdir -p "$disk/data"
	NODE_DATA[3]=$disk/data
}

chaos_start() {
	local i
	cluster_init || return 1
	require mkfs.ext4 fallocate iptables nsenter jq etcdctl || return 1
	[ -e "$FAKETIME_LIB" ] || {
		echo "$FAKETIME_LIB is missing: run contrib/install-deps.sh test" >&2
		return 1
	}
	CH=$T/run
	mkdir -p "$CH/acks" "$CH/readers" "$CH/final" "$CH/logs"
	: >"$CH/events.log"
	CH_GEN=() CH_WPID=() CH_RPID=() CH_ETCD_PID=()
	CH_LOOP=
	CL_OPTS=(scrub.interval.ms=2000)
	netns_setup 3 || return 1
	ETCD_NS=$NETNS_HUB
	ETCD_HOST=$NETNS_HUB_ADDR
	ch_etcd_start || return 1
	for i in 1 2 3; do
		node_setup "$i" || return 1
	done
	ch_loop_setup || return 1
	for i in 1 2 3; do
		node_launch "$i" || return 1
	done
	wait_nodes_alive 3 >/dev/null || return 1
	mkdir "$(on 1)/t"
	xset segment.bytes 1M "$(on 1)/t"
	for i in 1 2 3; do
		wait_for "$CL_WAIT" test -e "$(on "$i")/t/0" || return 1
	done
	wait_leader t 0 >/dev/null || return 1
	wait_isr_size t 0 3 >/dev/null || return 1
	for i in 1 2 3; do
		ch_writer_start "$i"
	done
}

# --- faults ----------------------------------------------------------------

# The agreed leader of t/0 among the nodes up, or the first node up.
ch_leader() {
	local l
	l=$(agreed_leader t 0 2>/dev/null) && [ -n "$l" ] && [ "$l" != null ] &&
		{ echo "$l"; return; }
	up_nodes | awk '{ print $1 }'
}

ch_follower_of() {
	local l=$1 i
	for i in $(up_nodes); do
		[ "$i" != "$l" ] && { echo "$i"; return; }
	done
	echo "$l"
}

ch_pick() {
	local -a a=("$@")
	echo "${a[RANDOM % ${#a[@]}]}"
}

ch_hold() {
	sleep "$(awk -v a="$1" -v b="$2" -v r="$RANDOM" \
		'BEGIN { printf "%.2f", a + (b - a) * r / 32767 }')"
}

# Restarts node I (stopped or killed) and its load; a node that cannot
# start again is an anomaly.
ch_node_up() {
	local i=$1
	NODE_WRAP[i]=
	if ! node_restart "$i"; then
		ch_event anomaly restart "node $i"
		return 1
	fi
	ch_writer_start "$i"
}

ch_fault_kill() {
	local kind=$1 n=$2
	ch_event start "$kind" "node $n"
	node_kill "$n"
	ch_load_stop "$n"
	ch_hold 1 4
	ch_node_up "$n"
	ch_event end "$kind"
}

ch_fault_pause() {
	local n=$1
	ch_event start pause-leader "node $n"
	node_pause "$n"
	ch_hold 3 6	# session.timeout.ms is 2 s
	node_resume "$n"
	ch_event end pause-leader
}

ch_fault_net() {
	local kind=$1 n=$2 m=${3:-}
	ch_event start "$kind" "node $n${m:+ and $m}"
	case $kind in
	cut-*) netns_cut "$n" ;;
	bridge)
		netns_block "$n" "${NETNS_ADDR[m]}"
		netns_block "$m" "${NETNS_ADDR[n]}"
		;;
	one-way) netns_ipt "$n" -A INPUT -i eth0 -j DROP ;;
	loss) netns_loss "$n" 30 ;;
	esac
	ch_hold 3 8
	netns_heal "$n"
	[ -z "$m" ] || netns_heal "$m"
	ch_event end "$kind"
}

ch_fault_etcd() {
	local kind=$1 m
	if [ "$kind" = etcd-leader ]; then
		m=$(ch_etcd_leader) || m=$((RANDOM % 3 + 1))
	else
		m=$((RANDOM % 3 + 1))
	fi
	ch_event start "$kind" "member $m"
	ch_etcd_kill "$m"
	ch_hold 2 6
	ch_etcd_launch "$m"
	wait_for 30 ch_etcd_healthy "$m" ||
		ch_event anomaly restart "etcd member $m"
	ch_event end "$kind"
}

# Flips a byte in the middle of the newest sealed segment of node N's
# replica of t/0: it must be found, never served, and mended from another.
ch_fault_bitflip() {
	local n=$1 dir seg
	dir=$(find "${NODE_DATA[n]}" -type d -path '*/t/0' 2>/dev/null | head -1)
	seg=$(ls "$dir"/*.log 2>/dev/null | sort | tail -2 | head -1)
	if [ -z "$seg" ] || [ "$(ls "$dir"/*.log | wc -l)" -lt 2 ]; then
		return 0	# no sealed segment yet: nothing to flip
	fi
	ch_event start bitflip "node $n $(basename "$seg")"
	python3 - "$seg" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
size = os.fstat(fd).st_size
pos = size // 2
while pos < size and os.pread(fd, 1, pos) == b"\n":
    pos += 1
b = os.pread(fd, 1, pos)
os.pwrite(fd, bytes([b[0] ^ 1]), pos)
os.fsync(fd)
os.close(fd)
print(pos)
EOF
	ch_hold 2 4
	ch_event end bitflip
}

ch_fault_disk() {
	local avail
	[ "${NODE_STATE[3]}" = up ] || return 0
	ch_event start disk-full "node 3"
	avail=$(df -B1 --output=avail "$CH_LOOP" | tail -1)
	fallocate -l $((avail > 65536 ? avail - 65536 : 1)) "$CH_LOOP/filler" 2>/dev/null ||
		dd if=/dev/zero of="$CH_LOOP/filler" bs=1M 2>/dev/null || true
	ch_hold 3 6
	rm -f "$CH_LOOP/filler"
	ch_event end disk-full
}

ch_fault_skew() {
	local n=$1
	ch_event start clock-skew "node $n +20s"
	ch_load_stop "$n"
	node_stop "$n" || true
	NODE_WRAP[n]="env LD_PRELOAD=$FAKETIME_LIB FAKETIME=+20s FAKETIME_DONT_FAKE_MONOTONIC=1"
	if ! node_restart "$n"; then
		ch_event anomaly restart "node $n (skewed)"
		NODE_WRAP[n]=
		ch_event end clock-skew
		return 1
	fi
	ch_writer_start "$n"
	ch_hold 4 8
	ch_load_stop "$n"
	node_stop "$n" || true
	ch_node_up "$n"
	ch_event end clock-skew
}

# One fault of the given kind.
ch_fault() {
	local kind=$1 l f
	l=$(ch_leader)
	f=$(ch_follower_of "$l")
	case $kind in
	kill-leader) ch_fault_kill "$kind" "$l" ;;
	kill-follower) ch_fault_kill "$kind" "$f" ;;
	kill-random) ch_fault_kill "$kind" "$(ch_pick $(up_nodes))" ;;
	pause-leader) ch_fault_pause "$l" ;;
	cut-leader) ch_fault_net "$kind" "$l" ;;
	cut-follower) ch_fault_net "$kind" "$f" ;;
	bridge) ch_fault_net bridge "$l" "$f" ;;
	one-way) ch_fault_net one-way "$(ch_pick 1 2 3)" ;;
	loss) ch_fault_net loss "$(ch_pick 1 2 3)" ;;
	etcd-member | etcd-leader) ch_fault_etcd "$kind" ;;
	bitflip) ch_fault_bitflip "$(ch_pick $(up_nodes))" ;;
	disk-full) ch_fault_disk ;;
	clock-skew) ch_fault_skew "$(ch_pick $(up_nodes))" ;;
	*) echo "unknown fault kind $kind" >&2; return 1 ;;
	esac
}

# Waits (bounded) until every node is up with an agreed leader, so the
# next fault starts from a working cluster.
ch_settle() {
	local i
	for i in 1 2 3; do
		if [ "${NODE_STATE[i]}" != up ]; then
			ch_node_up "$i" || true
		fi
	done
	wait_leader t 0 >/dev/null 2>&1 || true
	ch_hold 1 3
}

chaos_nemesis() {
	local secs=$1 end kinds kind
	end=$(($(date +%s) + secs))
	read -r -a kinds <<<"$(echo ${CHAOS_KINDS:-$CHAOS_ALL_KINDS})"
	while [ "$(date +%s)" -lt "$end" ]; do
		kind=${kinds[RANDOM % ${#kinds[@]}]}
		ch_fault "$kind" || true
		ch_settle
	done
}

# --- the end -----------------------------------------------------------------

# Whether node I's reader has the whole final file ($1 node, $2 size).
ch_reader_at() {
	local f=$CH/readers/r$1.${CH_GEN[$1]}
	[ "$(stat -c %s "$f")" -ge "$2" ] || { echo "reader $1 at $(stat -c %s "$f") of $2"; return 1; }
}

chaos_finish() {
	local i size
	for i in 1 2 3; do
		netns_heal "$i" || true
		[ "${NODE_STATE[i]}" = paused ] && node_resume "$i"
	done
	rm -f "$CH_LOOP/filler"
	ch_settle
	wait_isr_size t 0 3 >/dev/null || cl_note "chaos: the ISR did not fill up in ${CL_WAIT}s"
	: >"$CH/stop"
	writers_stop_all
	# Every replica converges (repairs included: reading every byte
	# through each mount finds what the scrubber has not yet).
	for i in 1 2 3; do
		cat "$(on "$i")/t/0" >/dev/null 2>&1 || true
	done
	wait_value 120 same_files t/0 1 2 3 >/dev/null || return 1
	size=$(stat -c %s "$(on 1)/t/0")
	for i in 1 2 3; do
		wait_value 60 ch_reader_at "$i" "$size" >/dev/null || true
		cp "$(on "$i")/t/0" "$CH/final/n$i" || return 1
	done
	for i in 1 2 3; do
		ch_load_stop "$i"
	done
}

# Waits for every live writer to notice the stop file.
writers_stop_all() {
	local i
	for i in 1 2 3; do
		[ -n "${CH_WPID[i]:-}" ] || continue
		if reap_pid "${CH_WPID[i]}" $((CL_WAIT * 2)); then
			bg_forget "${CH_WPID[i]}"
		else
			kill -9 "${CH_WPID[i]}" 2>/dev/null || true
		fi
		CH_WPID[i]=
	done
}

chaos_teardown() {
	local rc=0 keep=${TFS_KEEP:-}
	TFS_KEEP=1 cluster_teardown || rc=1
	ch_etcd_stop_all
	if [ -n "${CH_LOOP:-}" ]; then
		umount "$CH_LOOP" 2>/dev/null || umount -l "$CH_LOOP" || rc=1
	fi
	if [ -z "$keep" ] && [ -n "${T:-}" ]; then
		rm -rf "$T"
	fi
	return $rc
}
