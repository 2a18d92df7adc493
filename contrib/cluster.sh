#!/bin/bash
# make cluster / make cluster-stop: a three-node topicfs cluster on this
# machine for a person to try, with its own etcd, all on 127.0.0.1.
#
#   contrib/cluster.sh start          etcd and nodes 1..3, then a tour
#   contrib/cluster.sh stop           unmount every node, stop etcd
#   contrib/cluster.sh status         nodes, and each partition's leader,
#                                     epoch and in-sync replicas
#   contrib/cluster.sh kill N         kill -9 node N (clears its dead mount)
#   contrib/cluster.sh restart N      start node N again on its data
#
# Environment:
#   CLUSTER_DIR    where everything lives (default /tmp/topicfs-cluster):
#                  etcd/ (data, etcd.log), secret, n<i>/data, n<i>/mnt,
#                  n<i>/daemon.log, and the PIDs the script started
#   CLUSTER_PORT   first of the ports used (default 27900): etcd's client
#                  and peer ports are PORT and PORT+1, node i listens on
#                  PORT+10+i; all on 127.0.0.1
#   CLUSTER_OPTS   more -o options for every node (KEY=VALUE,...)
#   TOPICFS        the daemon (default: build/topicfs of this tree)
#   ETCD           the etcd binary (default: etcd on PATH)
#
# Processes are stopped by the PIDs recorded in CLUSTER_DIR, after
# checking each still runs the program it was started as.  The data stays
# in CLUSTER_DIR after stop: start again resumes the same cluster, and
# rm -rf CLUSTER_DIR forgets it.
set -u

here=$(cd "$(dirname "$0")" && pwd)
self=$0
D=${CLUSTER_DIR:-/tmp/topicfs-cluster}
N=3
ETCD=${ETCD:-etcd}
TOPICFS=${TOPICFS:-$here/../build/topicfs}

usage() {
	echo "usage: $self start|stop|status|kill N|restart N" >&2
	echo "  (CLUSTER_DIR=$D)" >&2
	exit 2
}

die() {
	echo "cluster: $*" >&2
	exit 1
}

# --- processes by recorded PID --------------------------------------------

# The PID in pid file $1 if that process still runs a command line
# containing $2 (so a recycled PID is never signalled).
live_pid() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" || return 1
	grep -qs '^State:[[:space:]]*Z' "/proc/$pid/status" && return 1
	echo "$pid"
}

# Waits up to $2 seconds for PID $1 to end.
wait_gone() {
	local pid=$1 i=0
	while [ $i -lt $(($2 * 10)) ]; do
		kill -0 "$pid" 2>/dev/null || return 0
		grep -qs '^State:[[:space:]]*Z' "/proc/$pid/status" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# Runs a command in its own session, detached, its PID written to file $1
# (the shell writes its own PID, then execs the command: same PID).
spawn() {
	local pidfile=$1 log=$2
	shift 2
	rm -f "$pidfile"
	# Descriptor 3 may be a test harness's (bats): the daemons must not
	# hold it open.
	setsid sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
		</dev/null >>"$log" 2>&1 3>&- &
	local i=0
	until [ -s "$pidfile" ]; do
		i=$((i + 1))
		[ $i -gt 100 ] && return 1
		sleep 0.05
	done
}

port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

mounted() {
	grep -qs " $1 fuse.topicfs " /proc/mounts
}

# --- settings ---------------------------------------------------------------

load_env() {
	[ -r "$D/env" ] || return 1
	# shellcheck disable=SC1091
	. "$D/env"
}

# The ports and options are chosen once and kept in $D/env: a restart of
# the cluster or of one node uses the same ones.
make_env() {
	local base=${CLUSTER_PORT:-27900}
	case $base in
	'' | *[!0-9]*) die "CLUSTER_PORT must be a number" ;;
	esac
	[ "$base" -ge 1024 ] && [ "$base" -le 65500 ] ||
		die "CLUSTER_PORT must be between 1024 and 65500"
	cat >"$D/env" <<EOF
ETCD_PORT=$base
ETCD_PEER=$((base + 1))
NODE_PORT_BASE=$((base + 10))
CLUSTER_NAME=demo
EXTRA_OPTS='${CLUSTER_OPTS:-}'
EOF
}

node_opts() {
	local i=$1 port=$((NODE_PORT_BASE + $1))
	local o="cluster.etcd=http://127.0.0.1:$ETCD_PORT,cluster.name=$CLUSTER_NAME"
	o="$o,node.id=$i,listen=127.0.0.1:$port,advertise=http://127.0.0.1:$port"
	o="$o,cluster.secret.file=$D/secret"
	# Quicker failover than the defaults, for a demonstration.
	o="$o,session.timeout.ms=3000,request.timeout.ms=10000"
	o="$o,replica.lag.time.max.ms=5000"
	[ -n "$EXTRA_OPTS" ] && o="$o,$EXTRA_OPTS"
	echo "$o"
}

# --- etcd ---------------------------------------------------------------------

etcd_healthy() {
	curl -s -m 2 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null |
		grep -q '"health":"true"'
}

start_etcd() {
	local peer=http://127.0.0.1:$ETCD_PEER url=http://127.0.0.1:$ETCD_PORT i=0
	if live_pid "$D/etcd.pid" "$D/etcd" >/dev/null; then
		return 0
	fi
	port_busy "$ETCD_PORT" && die "port $ETCD_PORT is taken (set CLUSTER_PORT)"
	port_busy "$ETCD_PEER" && die "port $ETCD_PEER is taken (set CLUSTER_PORT)"
	mkdir -p "$D/etcd"
	spawn "$D/etcd.pid" "$D/etcd/etcd.log" "$ETCD" --name n1 \
		--data-dir "$D/etcd/data" --listen-client-urls "$url" \
		--advertise-client-urls "$url" --listen-peer-urls "$peer" \
		--initial-advertise-peer-urls "$peer" \
		--initial-cluster "n1=$peer" \
		--logger zap --log-outputs stderr --log-level warn ||
		die "etcd did not start"
	until etcd_healthy; do
		i=$((i + 1))
		if [ $i -gt 200 ] || ! live_pid "$D/etcd.pid" "$D/etcd" >/dev/null; then
			tail -20 "$D/etcd/etcd.log" >&2
			die "etcd did not become healthy (log: $D/etcd/etcd.log)"
		fi
		sleep 0.1
	done
}

stop_etcd() {
	local pid
	pid=$(live_pid "$D/etcd.pid" "$D/etcd") || { rm -f "$D/etcd.pid"; return 0; }
	kill -TERM "$pid"
	if ! wait_gone "$pid" 10; then
		echo "cluster: etcd ignored SIGTERM; killing it" >&2
		kill -KILL "$pid"
		wait_gone "$pid" 5
	fi
	rm -f "$D/etcd.pid"
	echo "cluster: etcd stopped"
}

# --- nodes ----------------------------------------------------------------------

node_pid() {
	live_pid "$D/n$1.pid" "$D/n$1/data"
}

start_node() {
	local i=$1 mnt=$D/n$1/mnt i2=0 mode
	if node_pid "$i" >/dev/null; then
		echo "cluster: node $i is already running"
		return 0
	fi
	mkdir -p "$D/n$i/data" "$mnt"
	# A node killed with -9 leaves a dead mount.
	mounted "$mnt" && fusermount3 -u -z "$mnt" 2>/dev/null
	port_busy $((NODE_PORT_BASE + i)) &&
		die "port $((NODE_PORT_BASE + i)) is taken (set CLUSTER_PORT)"
	spawn "$D/n$i.pid" "$D/n$i/daemon.log" "$TOPICFS" -f \
		-o "$(node_opts "$i")" "$D/n$i/data" "$mnt" ||
		die "node $i did not start"
	until mounted "$mnt" && stat -f "$mnt" >/dev/null 2>&1; do
		i2=$((i2 + 1))
		if [ $i2 -gt 400 ] || ! node_pid "$i" >/dev/null; then
			tail -20 "$D/n$i/daemon.log" >&2
			return 1
		fi
		sleep 0.05
	done
	mode=$(jq -r '.node.mode' "$mnt/.topicfs/status" 2>/dev/null)
	if [ "$mode" != cluster ]; then
		echo "cluster: node $i runs in mode '$mode', not 'cluster':" \
			"this build of topicfs has no cluster mode yet" >&2
		return 1
	fi
}

stop_node() {
	local i=$1 mnt=$D/n$1/mnt pid
	pid=$(node_pid "$i")
	if [ -z "$pid" ]; then
		mounted "$mnt" && fusermount3 -u -z "$mnt" 2>/dev/null
		rm -f "$D/n$i.pid"
		return 0
	fi
	if ! fusermount3 -u "$mnt" 2>/dev/null; then
		echo "cluster: $mnt is busy; stopping node $i with SIGTERM"
		kill -TERM "$pid"
	fi
	if ! wait_gone "$pid" 30; then
		echo "cluster: node $i did not exit; killing it" >&2
		kill -KILL "$pid"
		wait_gone "$pid" 5
		fusermount3 -u -z "$mnt" 2>/dev/null
	fi
	rm -f "$D/n$i.pid"
	echo "cluster: node $i stopped"
}

nodes_alive() {
	local i k
	for ((i = 1; i <= N; i++)); do
		k=$(jq '[.cluster.nodes[]? | select(.alive)] | length' \
			"$D/n$i/mnt/.topicfs/status" 2>/dev/null) || return 1
		[ "$k" = "$N" ] || return 1
	done
}

need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 ||
			die "missing '$c': run contrib/install-deps.sh cluster"
	done
}

# --- commands -------------------------------------------------------------------

cmd_start() {
	local i k=0
	[ -x "$TOPICFS" ] || die "no $TOPICFS: run make first"
	need "$ETCD" curl jq fusermount3 setsid
	mkdir -p "$D" || die "cannot make $D"
	[ -e "$D/env" ] || make_env
	load_env
	if [ ! -e "$D/secret" ]; then
		(umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' \
			>"$D/secret" && echo >>"$D/secret") ||
			die "cannot write $D/secret"
	fi
	start_etcd
	for ((i = 1; i <= N; i++)); do
		if ! start_node "$i"; then
			echo "cluster: node $i failed (log: $D/n$i/daemon.log);" \
				"stopping what was started" >&2
			cmd_stop >/dev/null
			exit 1
		fi
	done
	until nodes_alive; do
		k=$((k + 1))
		if [ $k -gt 300 ]; then
			echo "cluster: the nodes do not all see each other yet;" \
				"see $D/n*/daemon.log" >&2
			break
		fi
		sleep 0.1
	done
	tour
}

tour() {
	local c=$here/cluster.sh i
	cat <<EOT
A three-node topicfs cluster "$CLUSTER_NAME" runs under $D:
  etcd    http://127.0.0.1:$ETCD_PORT    log etcd/etcd.log
EOT
	for ((i = 1; i <= N; i++)); do
		printf '  node %d  n%d/mnt    http://127.0.0.1:%d    log n%d/daemon.log\n' \
			"$i" "$i" $((NODE_PORT_BASE + i)) "$i"
	done
	cat <<EOT

Try, from $D:

  cd $D; C=$c
  mkdir n1/mnt/tweets                          # a topic made on node 1 ...
  ls n2/mnt n3/mnt                             # ... is on every node
  echo '{"user":1,"text":"hi"}' >> n1/mnt/tweets/0   # write on node 1
  cat n3/mnt/tweets/0                          # read on node 3
  tail -f n3/mnt/tweets/0 &                    # follow on node 3
  echo '{"user":2}' >> n2/mnt/tweets/0         # any node takes writes
  \$C status                                    # leader, epoch, ISR per partition
  getfattr -d n1/mnt/tweets/0                  # user.topicfs.leader, .replicas, .isr
  jq .cluster n1/mnt/.topicfs/status           # the nodes, as node 1 sees them

Kill the leader and keep writing:

  L=\$(getfattr --only-values -n user.topicfs.leader n1/mnt/tweets/0)
  \$C kill \$L                                   # kill -9 the leader
  \$C status                                    # a new leader, a smaller ISR
  echo '{"user":3}' >> n\$((L % 3 + 1))/mnt/tweets/0   # write on a live node
  \$C restart \$L                                # it catches up, rejoins the ISR
  cmp n1/mnt/tweets/0 n2/mnt/tweets/0 && cmp n1/mnt/tweets/0 n3/mnt/tweets/0

Stop with: make cluster-stop  (or \$C stop; the data stays in $D)
EOT
}

cmd_stop() {
	local i any=
	load_env 2>/dev/null || true
	for ((i = 1; i <= N; i++)); do
		[ -e "$D/n$i.pid" ] || mounted "$D/n$i/mnt" || continue
		any=1
		stop_node "$i"
	done
	if [ -e "$D/etcd.pid" ]; then
		any=1
		stop_etcd
	fi
	if [ -z "$any" ]; then
		echo "cluster: not running (nothing recorded in $D)"
	else
		echo "cluster: stopped; data kept in $D"
	fi
}

cmd_status() {
	local i pid src=
	load_env 2>/dev/null || { echo "cluster: not running (no $D/env)"; exit 1; }
	if live_pid "$D/etcd.pid" "$D/etcd" >/dev/null; then
		echo "etcd    http://127.0.0.1:$ETCD_PORT  pid $(cat "$D/etcd.pid")"
	else
		echo "etcd    not running"
	fi
	for ((i = 1; i <= N; i++)); do
		if pid=$(node_pid "$i"); then
			echo "node $i  $D/n$i/mnt  pid $pid"
			[ -z "$src" ] && src=$D/n$i/mnt/.topicfs/status
		else
			echo "node $i  not running"
		fi
	done
	[ -n "$src" ] || { echo "cluster: not running (no live node)"; exit 1; }
	need jq
	echo
	jq -r '
		"cluster: etcd \(.cluster.etcd // "?"), lease \(.cluster.lease // "?"), as node \(.node.id) sees it",
		(.cluster.nodes[]? | "  node \(.id) \(.address) \(if .alive then "alive" else "gone" end)"),
		"",
		"topic/partition  leader  epoch  replicas  isr  end",
		(.topics[] | .name as $t | .partitions[] |
		 "\($t)/\(.partition)  \(.leader)  \(.epoch)  \(.replicas | map(tostring) | join(","))  \(.isr | map(tostring) | join(","))  \(.end)")
	' "$src"
}

cmd_kill() {
	local i=$1 pid
	load_env 2>/dev/null || die "not running (no $D/env)"
	pid=$(node_pid "$i") || die "node $i is not running"
	kill -KILL "$pid"
	wait_gone "$pid" 10
	fusermount3 -u -z "$D/n$i/mnt" 2>/dev/null
	rm -f "$D/n$i.pid"
	echo "cluster: node $i (pid $pid) killed with SIGKILL"
}

cmd_restart() {
	local i=$1
	load_env 2>/dev/null || die "not running (no $D/env)"
	[ -x "$TOPICFS" ] || die "no $TOPICFS: run make first"
	start_node "$i" || die "node $i did not start (log: $D/n$i/daemon.log)"
	echo "cluster: node $i started (pid $(cat "$D/n$i.pid"))"
}

node_arg() {
	case ${1:-} in
	[1-9]) [ "$1" -le "$N" ] || die "no node $1 (nodes are 1 to $N)" ;;
	*) usage ;;
	esac
}

case ${1:-} in
start) [ $# -eq 1 ] || usage; cmd_start ;;
stop) [ $# -eq 1 ] || usage; cmd_stop ;;
status) [ $# -eq 1 ] || usage; cmd_status ;;
kill) [ $# -eq 2 ] || usage; node_arg "$2"; cmd_kill "$2" ;;
restart) [ $# -eq 2 ] || usage; node_arg "$2"; cmd_restart "$2" ;;
*) usage ;;
esac
