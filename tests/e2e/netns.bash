# Network namespaces for cluster tests, loaded after helper.bash: a
# private network per test in which each node has its own address, and
# faults (a cut node, a cut link, random loss) are iptables rules inside
# the namespaces.  Nothing is done in the root namespace: no interface, no
# route, no rule, so nothing there can be left behind or collide.
#
#   hub namespace  NETNS_HUB, a bridge br0 at NETNS_HUB_ADDR (10.77.0.1):
#                  run there what every node must reach (etcd)
#   node i         NETNS_NODE[i], interface eth0 at NETNS_ADDR[i]
#                  (10.77.0.1i), a veth pair to the bridge
#
# The subnet exists only inside these namespaces, so it cannot clash with
# the host's networks or with another test run's.  Namespace names carry
# the shell's PID and a random tag (tfs-<pid>-<tag>-hub, -n1, ...), so
# parallel runs never collide; netns_teardown removes every namespace
# this shell made (deleting one deletes its interfaces, bridge and rules).
# Stop the processes running inside first: a namespace with a process
# left in it lives on, nameless, until that process ends.
#
# A daemon is started in a namespace with `nsenter --net=/run/netns/NS`,
# never `ip netns exec`, which also makes a private mount namespace: the
# daemon's FUSE mount would be invisible to the test.  In the background,
# run nsenter itself (`nsenter --net="$(netns_path NS)" CMD &`): it execs
# CMD, so $! is CMD's PID.
#
#   netns_setup N            the hub and N node namespaces, addresses up
#   netns_path NS            /run/netns/NS, for nsenter --net=
#   netns_run NS CMD...      run CMD in NS's network namespace and wait
#   netns_cut I              node I drops everything to and from eth0 (the
#                            other nodes and the hub, etcd included), both
#                            ways; its loopback keeps working
#   netns_block I ADDR       node I drops traffic to and from ADDR only
#                            (a cut link: call it for both ends to be sure)
#   netns_loss I PERCENT     node I drops that share of packets, each way
#   netns_heal I             remove every rule netns_cut/_block/_loss added
#   netns_rules I            print node I's iptables rules (for logs)
#   netns_teardown           delete every namespace made; 0, or 1 if one
#                            could not be deleted

NETNS_PREFIX=${NETNS_PREFIX:-10.77.0}

netns_require() {
	require ip iptables nsenter || return 1
	if [ "$(id -u)" -ne 0 ]; then
		echo "network namespaces need root" >&2
		return 1
	fi
}

# Records a namespace as ours before making it, so that a failure half
# way still removes it.
netns_add() {
	NETNS_MADE+=("$1")
	ip netns add "$1"
}

netns_setup() {
	local n=$1 i tag
	netns_require || return 1
	NETNS_MADE=()
	NETNS_NODE=()
	NETNS_ADDR=()
	tag=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
	NETNS_BASE=tfs-$$-$tag
	NETNS_HUB=$NETNS_BASE-hub
	NETNS_HUB_ADDR=$NETNS_PREFIX.1
	netns_add "$NETNS_HUB" || return 1
	ip -n "$NETNS_HUB" link set lo up &&
		ip -n "$NETNS_HUB" link add br0 type bridge &&
		ip -n "$NETNS_HUB" addr add "$NETNS_HUB_ADDR/24" dev br0 &&
		ip -n "$NETNS_HUB" link set br0 up || return 1
	for ((i = 1; i <= n; i++)); do
		NETNS_NODE[i]=$NETNS_BASE-n$i
		NETNS_ADDR[i]=$NETNS_PREFIX.$((10 + i))
		netns_add "${NETNS_NODE[i]}" || return 1
		ip -n "${NETNS_NODE[i]}" link set lo up &&
			ip -n "$NETNS_HUB" link add "h$i" type veth peer \
				name eth0 netns "${NETNS_NODE[i]}" &&
			ip -n "$NETNS_HUB" link set "h$i" master br0 up &&
			ip -n "${NETNS_NODE[i]}" addr add \
				"${NETNS_ADDR[i]}/24" dev eth0 &&
			ip -n "${NETNS_NODE[i]}" link set eth0 up || return 1
	done
}

netns_path() {
	echo "/run/netns/$1"
}

netns_run() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

# iptables in node I's namespace.
netns_ipt() {
	local i=$1
	shift
	nsenter --net="/run/netns/${NETNS_NODE[i]}" iptables -w 5 "$@"
}

netns_cut() {
	netns_ipt "$1" -A INPUT -i eth0 -j DROP &&
		netns_ipt "$1" -A OUTPUT -o eth0 -j DROP
}

netns_block() {
	netns_ipt "$1" -A INPUT -s "$2" -j DROP &&
		netns_ipt "$1" -A OUTPUT -d "$2" -j DROP
}

netns_loss() {
	local p
	p=$(awk -v x="$2" 'BEGIN { printf "%.4f", x / 100 }')
	netns_ipt "$1" -A INPUT -i eth0 -m statistic --mode random \
		--probability "$p" -j DROP &&
		netns_ipt "$1" -A OUTPUT -o eth0 -m statistic --mode random \
			--probability "$p" -j DROP
}

# The namespace is ours alone: flushing its chains removes exactly the
# rules the functions above added.
netns_heal() {
	netns_ipt "$1" -F INPUT && netns_ipt "$1" -F OUTPUT
}

netns_rules() {
	netns_ipt "$1" -S
}

netns_teardown() {
	local ns rc=0
	for ns in "${NETNS_MADE[@]}"; do
		[ -e "/run/netns/$ns" ] || continue
		if ! ip netns del "$ns"; then
			echo "cannot delete network namespace $ns" >&2
			rc=1
		fi
	done
	NETNS_MADE=()
	return $rc
}
