# Shared set-up for the cluster end-to-end tests, loaded after helper.bash
# (and after netns.bash by tests that put nodes in network namespaces):
# one etcd member and N topicfs nodes per test, all started and stopped by
# PID, every wait bounded, everything removed in cluster_teardown.
#
# Layout of the test's folder $T:
#   etcd/data etcd/etcd.log        the etcd member
#   secret                         the cluster secret (0600, 64 hex digits)
#   n<i>/data n<i>/mnt n<i>/daemon.log     node i
#   w<id>.ack w<id>.err            writer id's acknowledgement log, stderr
#
# Nodes run on 127.0.0.1 with free ports, or (cluster_netns) each in its
# own network namespace with etcd in the hub namespace.  Every function
# that starts or reaps a process (etcd_*, node_*, cluster_start,
# writer_start, writers_stop, bg_spawn) must run in the test's own shell,
# never inside $(...): `wait` only reaps the shell's own children.
#
# Set-up and processes
#   cluster_start N [KEY=VALUE...]   etcd, the secret and nodes 1..N with
#                        the given options for all; waits until each node
#                        sees N live nodes
#   cluster_netns N [KEY=VALUE...]   the same, each node in a network
#                        namespace (needs netns.bash)
#   CL_WAIT              seconds every wait_* allows (default 30)
#   WRITER_OPTS          writer options of the failure tests (throttled)
#   CL_STANDALONE=1      nodes without the cluster options, checked to be
#                        standalone: the harness's own tests
#   etcd_start           start etcd (the first time on new ports, later
#                        again on the same data and ports); waits healthy
#   etcd_stop / etcd_kill / etcd_pause / etcd_resume    by PID
#   etcd_ctl ARGS...     etcdctl against the test's etcd
#   node_start I [KEY=VALUE...]   start node I (the options are kept for
#                        its restarts); waits for the mount and checks the
#                        daemon runs in cluster mode as node I
#   node_stop I          unmount; the daemon must exit 0
#   node_kill I          kill -9, then clear its dead mount
#   node_restart I       start a stopped or killed node again, same data
#   node_pause I / node_resume I    SIGSTOP / SIGCONT
#   up_nodes             the nodes running and not paused
#   pid_gone PID         a process not ours has exited (or is a zombie)
#   cluster_teardown     stop everything started (background helpers,
#                        nodes, etcd, namespaces), scan the node logs for
#                        sanitizer reports, remove $T (kept with TFS_KEEP=1)
#
# Reading .topicfs/status (jq) on node I; topic T, partition P
#   node_status I        the JSON
#   status_jq I ARGS...  jq ARGS on it (bounded: 10 s)
#   part_leader I T P    leader id or null       part_epoch I T P
#   part_role I T P      leader|follower|none    part_end I T P
#   part_isr I T P       sorted ids, "1,2,3"     part_replicas I T P
#   topic_id I T         the topic's id
#   agreed_leader T P [I...]   prints the leader when every listed node
#                        (default: up_nodes) names the same one and that
#                        node says it leads
#   wait_leader T P [I...]           ... until so; prints it
#   wait_new_leader T P OLD [I...]   ... until a leader other than OLD
#   wait_isr_size T P N [I...]       ... until the leader's ISR has N
#   wait_nodes_alive N [I...]        ... until each lists N live nodes
#   wait_size I PATH SIZE            until MNT_I/PATH has SIZE bytes
#   wait_same PATH [I...]            until the file is identical on all
#   same_files PATH [I...]           identical now, or say where not
#   on I                 node I's mount point
#
# Writes and background helpers
#   write_line I PATH TEXT    one write(); prints OK or the errno name
#   expect_write NAME I PATH TEXT    fails unless that outcome
#   writer_start ID I PATH [writer options...]   tests/tools/writer in
#                        acknowledged mode (-a -e -t) on node I's PATH
#   acked ID             records acknowledged so far
#   wait_acked ID N      until writer ID has N acknowledged records
#   writers_stop         ask every writer to stop; wait; W_RC[ID] = status
#   bg_spawn NAME CMD... a background command, output in $T/NAME.out
#   bg_forget PID        after reaping a background command yourself
#   wait_child PID SECS  its exit status, or kill it and fail after SECS
#
# Topics and lines
#   make_topic T         mkdir on node 1; waits until every up node has
#                        T/0 and its partition 0 an agreed leader
#   others_than I        the nodes started, but I; first_other_than I
#   expect_lines L...    the lines, as $T/expected (for cmp)
#   lines_check FILE ONCE MAYBE   words of ONCE present once each, in
#                        order; of MAYBE at most once; nothing else
#
# Signed peer requests (include/auth.h), made with the openssl command line
#   peer_mac SECRET_FILE METHOD TARGET NODE TIME NONCE BODY_FILE
#   peer_request OUT_FILE URL METHOD TARGET NODE TIME NONCE BODY_FILE [MAC]
#                        prints the HTTP status
#
#   fails CMD...         succeeds when CMD fails (bats ignores `! CMD`)

CL_WAIT=${CL_WAIT:-30}
# Writers of the failure tests: whole records of up to 1 KiB, at most
# 4 KiB a write and about 50 writes a second each: thousands of records
# to check, a few MB on disk (unthrottled writers filled 260 MB in three
# minutes of a partition test).
WRITER_OPTS="-C 4K -L 1K -u 20000"
ETCD=${TFS_ETCD:-etcd}

cluster_require() {
	[ -x "$TOPICFS" ] || { echo "no $TOPICFS: run make first" >&2; return 1; }
	[ -x "$TOOLS/writer" ] && [ -x "$TOOLS/checkrecords" ] ||
		{ echo "no $TOOLS/writer: run make first" >&2; return 1; }
	require "$ETCD" etcdctl curl jq openssl python3 fusermount3 \
		getfattr setfattr od cmp timeout
}

cl_note() {
	echo "# $*" >&3
}

# --- the test's folder ------------------------------------------------

cluster_init() {
	cluster_require || return 1
	T=$(mktemp -d /tmp/tfs-cl.XXXXXX)
	CL_NAME=e2e-$$-$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
	CL_OPTS=()
	CL_PORTS=()
	NODE_PID=() NODE_STATE=() NODE_HOST=() NODE_PORT=() NODE_NS=()
	NODE_OPTS=() NODE_MNT=() NODE_DATA=() NODE_LOG=() NODE_WRAP=()
	W_PID=() W_RC=()
	BG=()
	ETCD_PID=
	ETCD_NS=
	ETCD_HOST=127.0.0.1
	ETCD_PORT=
	secret_make "$T/secret"
}

# 32 random bytes as 64 hex digits and a newline, readable by root only.
secret_make() {
	(umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$1" &&
		echo >>"$1")
}

# Sets variable NAME to a port on 127.0.0.1 that nothing listens on and
# that was not handed out before in this test (so not inside $(...),
# which would forget the ones handed out).
free_port() {
	local p i
	for i in 1 2 3 4 5 6 7 8; do
		p=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])') || return 1
		case " ${CL_PORTS[*]} " in
		*" $p "*) continue ;;
		esac
		CL_PORTS+=("$p")
		printf -v "$1" %s "$p"
		return 0
	done
	return 1
}

# The words that run a command in network namespace $1 ("" for this one)
# into the array NS_PRE.  For background processes: "${NS_PRE[@]}" CMD &
# is one simple command, so $! is CMD's PID (nsenter execs it); a shell
# function run with & would give a subshell's.
ns_prefix() {
	NS_PRE=()
	[ -z "$1" ] || NS_PRE=(nsenter "--net=/run/netns/$1")
}

# Runs a command in namespace $1 ("" for this one), in the foreground.
in_ns() {
	local ns=$1
	shift
	if [ -n "$ns" ]; then
		nsenter --net="/run/netns/$ns" "$@"
	else
		"$@"
	fi
}

pid_alive() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null
}

# A process that is not our child is gone once it no longer exists or is
# a zombie (a daemon reparented to PID 1 waits there to be reaped).
pid_gone() {
	local state
	state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' \
		"/proc/$1/status" 2>/dev/null)
	[ -z "$state" ] || [ "$state" = Z ]
}

# Waits up to SECS for our child PID to exit; sets REAPED_RC.  1 if it
# did not (see wait_child to kill it then).
reap_pid() {
	local pid=$1 secs=$2
	local deadline=$(($(date +%s%N) + secs * 1000000000))
	while pid_alive "$pid"; do
		# A zombie child still answers kill -0: wait for it.
		if grep -qs '^State:[[:space:]]*Z' "/proc/$pid/status"; then
			break
		fi
		if [ "$(date +%s%N)" -gt "$deadline" ]; then
			return 1
		fi
		sleep 0.02
	done
	REAPED_RC=0
	wait "$pid" 2>/dev/null || REAPED_RC=$?
}

# Waits up to SECS for our child PID and returns its exit status; one
# still running then is killed and the wait fails.
wait_child() {
	if ! reap_pid "$1" "$2"; then
		echo "process $1 still running after ${2}s: killed" >&2
		kill -9 "$1" 2>/dev/null || true
		reap_pid "$1" 10 || true
		return 1
	fi
	return "$REAPED_RC"
}

# --- etcd -------------------------------------------------------------

etcd_healthy() {
	in_ns "$ETCD_NS" curl -s -m 2 "$ETCD_URL/health" 2>/dev/null |
		grep -q '"health":"true"'
}

etcd_launch() {
	local peer=http://$ETCD_HOST:$ETCD_PEER
	mkdir -p "$T/etcd"
	ns_prefix "$ETCD_NS"
	"${NS_PRE[@]}" "$ETCD" --name n1 --data-dir "$T/etcd/data" \
		--listen-client-urls "$ETCD_URL" \
		--advertise-client-urls "$ETCD_URL" \
		--listen-peer-urls "$peer" \
		--initial-advertise-peer-urls "$peer" \
		--initial-cluster "n1=$peer" \
		--heartbeat-interval 50 --election-timeout 500 \
		--logger zap --log-outputs stderr --log-level warn \
		>>"$T/etcd/etcd.log" 2>&1 3>&- &
	ETCD_PID=$!
	local deadline=$(($(date +%s) + 20))
	until etcd_healthy; do
		if ! pid_alive "$ETCD_PID" || [ "$(date +%s)" -gt "$deadline" ]; then
			echo "etcd did not become healthy on $ETCD_URL; log:" >&2
			tail -20 "$T/etcd/etcd.log" >&2
			kill -9 "$ETCD_PID" 2>/dev/null || true
			wait "$ETCD_PID" 2>/dev/null || true
			ETCD_PID=
			return 1
		fi
		sleep 0.05
	done
}

# The first time: new ports (in a namespace: the standard ones, the
# namespace being ours) and a new data folder, retried should a port have
# been taken meanwhile.  Later: a restart on the same data and ports.
etcd_start() {
	local attempt
	if pid_alive "$ETCD_PID"; then
		echo "etcd is already running (pid $ETCD_PID)" >&2
		return 1
	fi
	if [ -n "$ETCD_PORT" ]; then
		etcd_launch
		return
	fi
	for attempt in 1 2 3; do
		if [ -n "$ETCD_NS" ]; then
			ETCD_PORT=2379 ETCD_PEER=2380
		else
			free_port ETCD_PORT && free_port ETCD_PEER || return 1
		fi
		ETCD_URL=http://$ETCD_HOST:$ETCD_PORT
		etcd_launch && return 0
		rm -rf "$T/etcd"
	done
	ETCD_PORT=
	return 1
}

# SIGTERM, and SIGKILL if it has not exited after 10 s.
etcd_stop() {
	pid_alive "$ETCD_PID" || { ETCD_PID=; return 0; }
	kill -CONT "$ETCD_PID" 2>/dev/null || true
	kill -TERM "$ETCD_PID" 2>/dev/null || true
	if ! reap_pid "$ETCD_PID" 10; then
		echo "etcd (pid $ETCD_PID) ignored SIGTERM; killing it" >&2
		kill -9 "$ETCD_PID" 2>/dev/null || true
		reap_pid "$ETCD_PID" 10 || true
	fi
	ETCD_PID=
}

etcd_kill() {
	pid_alive "$ETCD_PID" || return 0
	kill -9 "$ETCD_PID" 2>/dev/null || true
	reap_pid "$ETCD_PID" 10 || true
	ETCD_PID=
}

etcd_pause() {
	kill -STOP "$ETCD_PID"
}

etcd_resume() {
	kill -CONT "$ETCD_PID"
}

etcd_ctl() {
	in_ns "$ETCD_NS" env ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL" \
		--dial-timeout 2s --command-timeout 5s "$@"
}

# --- nodes --------------------------------------------------------------

on() {
	echo "${NODE_MNT[$1]}"
}

node_setup() {
	local i=$1
	NODE_DATA[i]=$T/n$i/data
	NODE_MNT[i]=$T/n$i/mnt
	NODE_LOG[i]=$T/n$i/daemon.log
	NODE_STATE[i]=down
	mkdir -p "${NODE_MNT[i]}"
	if [ -n "${NETNS_NODE[i]:-}" ] && [ -n "$ETCD_NS" ]; then
		NODE_NS[i]=${NETNS_NODE[i]}
		NODE_HOST[i]=${NETNS_ADDR[i]}
		NODE_PORT[i]=7092
	else
		NODE_NS[i]=
		NODE_HOST[i]=127.0.0.1
		free_port "NODE_PORT[$i]" || return 1
	fi
}

# KEY=VALUE items (each may itself be a comma-separated list), the last
# value of a key winning, joined with commas in first-seen order.
merge_opts() {
	printf '%s\n' "$@" | tr ',' '\n' | awk -F= '
		NF && $1 != "" { if (!($1 in v)) order[++n] = $1; v[$1] = $0 }
		END { for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? "," : ""), v[order[i]] }'
}

node_opts() {
	local i=$1 addr=${NODE_HOST[$1]}:${NODE_PORT[$1]}
	if [ -n "${CL_STANDALONE:-}" ]; then
		merge_opts "${CL_OPTS[@]}" ${NODE_OPTS[i]:+"${NODE_OPTS[i]}"}
		return
	fi
	merge_opts "cluster.etcd=$ETCD_URL" "cluster.name=$CL_NAME" \
		"node.id=$i" "listen=$addr" "advertise=http://$addr" \
		"cluster.secret.file=$T/secret" \
		session.timeout.ms=2000 request.timeout.ms=5000 \
		replica.lag.time.max.ms=2000 \
		"${CL_OPTS[@]}" ${NODE_OPTS[i]:+"${NODE_OPTS[i]}"}
}

# Starts node I's daemon in the foreground mode (-f) in the background,
# waits until its mount answers, and checks it runs as node I of a
# cluster: a build without cluster mode fails here, at once.
node_launch() {
	local i=$1 mnt=${NODE_MNT[$1]} log=${NODE_LOG[$1]} opts
	opts=$(node_opts "$i")
	echo "--- start: topicfs -f -o $opts" >>"$log"
	# fd 3 is bats' own: a daemon holding it would keep bats waiting.
	ns_prefix "${NODE_NS[i]}"
	# NODE_WRAP[i]: words run before the daemon (env with libfaketime
	# for a skewed clock: tests/e2e/chaos.bash).
	# shellcheck disable=SC2086
	"${NS_PRE[@]}" ${NODE_WRAP[i]:-} "$TOPICFS" -f -o "$opts" \
		"${NODE_DATA[i]}" "$mnt" >>"$log" 2>&1 3>&- &
	NODE_PID[i]=$!
	NODE_STATE[i]=up
	local deadline=$(($(date +%s) + 20))
	until mount_live "$mnt"; do
		if ! pid_alive "${NODE_PID[i]}"; then
			echo "node $i exited before mounting; log:" >&2
			tail -30 "$log" >&2
			reap_pid "${NODE_PID[i]}" 5 || true
			NODE_STATE[i]=down
			return 1
		fi
		if [ "$(date +%s)" -gt "$deadline" ]; then
			echo "node $i did not mount in 20s; log:" >&2
			tail -30 "$log" >&2
			return 1
		fi
		sleep 0.02
	done
	node_check_mode "$i"
}

# The daemon on node I's mount runs in cluster mode as node I.
node_check_mode() {
	local i=$1 mode
	if [ -n "${CL_STANDALONE:-}" ]; then
		status_jq "$i" -e '.node.mode == "standalone"' >/dev/null
		return
	fi
	mode=$(status_jq "$i" -r '"\(.node.mode) \(.node.id)"') || {
		echo "node $i: .topicfs/status is not JSON" >&2
		return 1
	}
	if [ "$mode" != "cluster $i" ]; then
		echo "node $i: status says mode and id '$mode', not 'cluster $i':" \
			"this daemon does not run in cluster mode" >&2
		return 1
	fi
}

node_start() {
	local i=$1
	shift
	[ -n "${NODE_MNT[i]:-}" ] || node_setup "$i" || return 1
	if [ $# -gt 0 ]; then
		NODE_OPTS[i]=$(merge_opts ${NODE_OPTS[i]:+"${NODE_OPTS[i]}"} "$@")
	fi
	node_launch "$i"
}

node_restart() {
	local i=$1
	case ${NODE_STATE[i]:-} in
	down | killed) node_launch "$i" ;;
	*)
		echo "node $i is ${NODE_STATE[i]:-unknown}, cannot restart" >&2
		return 1
		;;
	esac
}

# Reaps node I's daemon, which must exit 0 within 30 s.
node_reap() {
	local i=$1
	if ! reap_pid "${NODE_PID[i]}" 30; then
		echo "node $i (pid ${NODE_PID[i]}) did not exit after unmount" >&2
		kill -9 "${NODE_PID[i]}" 2>/dev/null || true
		reap_pid "${NODE_PID[i]}" 10 || true
		return 1
	fi
	if [ "$REAPED_RC" -ne 0 ]; then
		echo "node $i exited with status $REAPED_RC; log:" >&2
		tail -30 "${NODE_LOG[i]}" >&2
		return 1
	fi
}

node_stop() {
	local i=$1 n=0
	if [ "${NODE_STATE[i]:-}" = paused ]; then
		node_resume "$i" || true
	fi
	until fusermount3 -u "${NODE_MNT[i]}" 2>/dev/null; do
		n=$((n + 1))
		if [ $n -gt 100 ]; then
			# Busy (a process stuck in a request the daemon does
			# not answer): detach it, and the daemon ends by
			# itself or is killed after node_reap's deadline.
			echo "cannot unmount node $i:" >&2
			fusermount3 -u "${NODE_MNT[i]}" || true
			fusermount3 -u -z "${NODE_MNT[i]}" 2>/dev/null || true
			NODE_STATE[i]=down
			node_reap "$i" || true
			return 1
		fi
		sleep 0.05
	done
	NODE_STATE[i]=down
	node_reap "$i"
}

node_kill() {
	local i=$1
	kill -9 "${NODE_PID[i]}" 2>/dev/null || true
	reap_pid "${NODE_PID[i]}" 10 || true
	fusermount3 -u -z "${NODE_MNT[i]}" 2>/dev/null || true
	NODE_STATE[i]=killed
}

node_pause() {
	kill -STOP "${NODE_PID[$1]}" || return 1
	NODE_STATE[$1]=paused
}

node_resume() {
	kill -CONT "${NODE_PID[$1]}" || return 1
	NODE_STATE[$1]=up
}

up_nodes() {
	local i out=()
	for i in "${!NODE_STATE[@]}"; do
		[ "${NODE_STATE[i]}" = up ] && out+=("$i")
	done
	echo "${out[@]}"
}

cluster_start() {
	local n=$1 i
	shift
	cluster_init || return 1
	CL_OPTS=("$@")
	etcd_start || return 1
	for ((i = 1; i <= n; i++)); do
		node_start "$i" || return 1
	done
	wait_nodes_alive "$n" >/dev/null
}

# The same with every node in its own network namespace on a bridge, and
# etcd in the hub namespace on the bridge's address.
cluster_netns() {
	local n=$1 i
	shift
	cluster_init || return 1
	CL_OPTS=("$@")
	netns_setup "$n" || return 1
	ETCD_NS=$NETNS_HUB
	ETCD_HOST=$NETNS_HUB_ADDR
	etcd_start || return 1
	for ((i = 1; i <= n; i++)); do
		node_start "$i" || return 1
	done
	wait_nodes_alive "$n" >/dev/null
}

check_logs_clean() {
	local i rc=0
	for i in "${!NODE_LOG[@]}"; do
		[ -e "${NODE_LOG[i]}" ] || continue
		LOG=${NODE_LOG[i]} check_log_clean || rc=1
	done
	return $rc
}

cluster_teardown() {
	local i rc=0
	[ -n "${T:-}" ] && [ -d "$T" ] || return 0
	: >"$T/writers.stop"
	bg_stop_all || rc=1
	for i in "${!NODE_STATE[@]}"; do
		if [ "${NODE_STATE[i]}" = paused ]; then
			node_resume "$i" || true
		fi
	done
	for i in "${!NODE_STATE[@]}"; do
		if [ "${NODE_STATE[i]}" != up ]; then
			:	# stopped or killed by the test, already reaped
		elif ! pid_alive "${NODE_PID[i]}" ||
			grep -qs '^State:[[:space:]]*Z' "/proc/${NODE_PID[i]}/status"; then
			reap_pid "${NODE_PID[i]}" 5 || true
			echo "node $i (pid ${NODE_PID[i]}) ended by itself during" \
				"the test, status ${REAPED_RC:-?}" >&2
			rc=1
		elif is_mounted "${NODE_MNT[i]}"; then
			node_stop "$i" || rc=1
		else
			kill -TERM "${NODE_PID[i]}" 2>/dev/null || true
			node_reap "$i" || rc=1
		fi
		if is_mounted "${NODE_MNT[i]}"; then
			fusermount3 -u -z "${NODE_MNT[i]}" 2>/dev/null || true
		fi
		NODE_STATE[i]=down
	done
	etcd_stop || rc=1
	if declare -F netns_teardown >/dev/null; then
		netns_teardown || rc=1
	fi
	check_logs_clean || rc=1
	# Bats shows this only for a failed test: the logs say why.
	if [ $rc -ne 0 ] || [ -z "${BATS_TEST_COMPLETED:-}" ]; then
		for i in "${!NODE_LOG[@]}"; do
			echo "--- node $i log (${NODE_LOG[i]}), last 40 lines ---" >&2
			tail -40 "${NODE_LOG[i]}" >&2 2>/dev/null || true
		done
		echo "--- etcd log, last 10 lines ---" >&2
		tail -10 "$T/etcd/etcd.log" >&2 2>/dev/null || true
	fi
	if [ -n "${TFS_KEEP:-}" ]; then
		echo "# kept $T" >&3
	else
		rm -rf "$T"
	fi
	return $rc
}

# --- status ------------------------------------------------------------

node_status() {
	timeout -s KILL 10 cat "${NODE_MNT[$1]}/.topicfs/status"
}

# jq on node I's status, killed if the read does not return in 10 s (a
# hung daemon must not hang a wait whose deadline is longer).
status_jq() {
	local i=$1
	shift
	timeout -s KILL 10 jq "$@" "${NODE_MNT[i]}/.topicfs/status"
}

# jq EXPR on partition P of topic T in node I's status; fails when the
# partition is not there.
part_jq() {
	local i=$1 t=$2 p=$3 expr=$4 out
	out=$(status_jq "$i" -r --arg t "$t" --argjson p "$p" \
		".topics[] | select(.name == \$t) | .partitions[] |
		 select(.partition == \$p) | $expr" 2>/dev/null) || return 1
	[ -n "$out" ] || return 1
	echo "$out"
}

part_leader() { part_jq "$1" "$2" "$3" '.leader'; }
part_epoch() { part_jq "$1" "$2" "$3" '.epoch'; }
part_role() { part_jq "$1" "$2" "$3" '.role'; }
part_end() { part_jq "$1" "$2" "$3" '.end'; }
part_isr() { part_jq "$1" "$2" "$3" '.isr | sort | map(tostring) | join(",")'; }
part_replicas() {
	part_jq "$1" "$2" "$3" '.replicas | sort | map(tostring) | join(",")'
}

topic_id() {
	local out
	out=$(status_jq "$1" -r --arg t "$2" \
		'.topics[] | select(.name == $t) | .id' 2>/dev/null) || return 1
	[ -n "$out" ] && echo "$out"
}

# Polls CMD... until it succeeds (up to SECS) and prints its output; on a
# timeout says what it waited for and what CMD last printed.
wait_value() {
	local secs=$1 out=''
	shift
	local deadline=$(($(date +%s%N) + secs * 1000000000))
	while :; do
		if out=$("$@" 2>&1); then
			echo "$out"
			return 0
		fi
		if [ "$(date +%s%N)" -gt "$deadline" ]; then
			echo "timed out after ${secs}s waiting for: $*" >&2
			[ -n "$out" ] && echo "last said: $out" >&2
			return 1
		fi
		sleep 0.05
	done
}

agreed_leader() {
	local t=$1 p=$2 i l first=''
	shift 2
	[ $# -gt 0 ] || set -- $(up_nodes)
	for i in "$@"; do
		l=$(part_leader "$i" "$t" "$p") || { echo "node $i: no $t/$p"; return 1; }
		[ -z "$first" ] && first=$l
		if [ "$l" != "$first" ]; then
			echo "nodes disagree: leader $first and $l (node $i)"
			return 1
		fi
	done
	case $first in
	'' | null | *[!0-9]*) echo "no leader ($first)"; return 1 ;;
	esac
	case " $* " in
	*" $first "*) ;;
	*) echo "leader $first is not among nodes $*"; return 1 ;;
	esac
	if [ "$(part_role "$first" "$t" "$p")" != leader ]; then
		echo "node $first is named leader but does not say so yet"
		return 1
	fi
	echo "$first"
}

leader_other_than() {
	local t=$1 p=$2 old=$3 l
	shift 3
	l=$(agreed_leader "$t" "$p" "$@") || { echo "$l"; return 1; }
	[ "$l" != "$old" ] || { echo "leader is still $old"; return 1; }
	echo "$l"
}

isr_size_is() {
	local t=$1 p=$2 n=$3 l isr
	shift 3
	l=$(agreed_leader "$t" "$p" "$@") || { echo "$l"; return 1; }
	isr=$(part_isr "$l" "$t" "$p") || return 1
	local k
	k=$(awk -F, '{ print NF }' <<<"$isr")
	[ "$k" -eq "$n" ] || { echo "ISR on leader $l is $isr"; return 1; }
	echo "$isr"
}

wait_leader() { wait_value "$CL_WAIT" agreed_leader "$@"; }
wait_new_leader() { wait_value "$CL_WAIT" leader_other_than "$@"; }
wait_isr_size() { wait_value "$CL_WAIT" isr_size_is "$@"; }

nodes_alive_are() {
	local n=$1 i k
	shift
	[ $# -gt 0 ] || set -- $(up_nodes)
	for i in "$@"; do
		k=$(status_jq "$i" '[.cluster.nodes[] | select(.alive)] | length' \
			2>/dev/null) ||
			{ echo "node $i: no cluster.nodes in status"; return 1; }
		[ "$k" -eq "$n" ] ||
			{ echo "node $i sees $k live nodes"; return 1; }
	done
}

wait_nodes_alive() { wait_value "$CL_WAIT" nodes_alive_are "$@"; }

size_is() {
	local s
	s=$(stat -c %s "${NODE_MNT[$1]}/$2" 2>&1) || { echo "$s"; return 1; }
	[ "$s" -eq "$3" ] || { echo "size $s"; return 1; }
}

wait_size() { wait_value "$CL_WAIT" size_is "$@"; }

same_files() {
	local path=$1 i first='' out
	shift
	[ $# -gt 0 ] || set -- $(up_nodes)
	for i in "$@"; do
		if [ -z "$first" ]; then
			first=$i
			continue
		fi
		if ! out=$(cmp "${NODE_MNT[first]}/$path" \
			"${NODE_MNT[i]}/$path" 2>&1); then
			echo "$path differs between nodes $first and $i:" \
				"${out:-?} (sizes $(stat -c %s \
				"${NODE_MNT[first]}/$path" \
				"${NODE_MNT[i]}/$path" | tr '\n' ' '))"
			return 1
		fi
	done
}

wait_same() { wait_value "$CL_WAIT" same_files "$@"; }

# --- writes -------------------------------------------------------------

# One write() of TEXT and a newline to node I's PATH (O_APPEND); prints OK
# or the errno's name, or TIMEOUT if it had not returned after CL_WAIT
# seconds.  The writer is then sent SIGKILL and left behind: a process
# stuck in a FUSE write may not end before its daemon answers or dies (it
# can even wait on the file's lock, uninterruptibly, behind another
# writer), and teardown ends the daemons.
write_line() {
	local out=$T/write.$BASHPID.$RANDOM pid
	python3 -c '
import errno, os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
    try:
        b = (sys.argv[2] + "\n").encode()
        if os.write(fd, b) != len(b):
            print("SHORT")
            sys.exit(0)
    finally:
        os.close(fd)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
' "${NODE_MNT[$1]}/$2" "$3" >"$out" 2>&1 3>&- &
	pid=$!
	if reap_pid "$pid" "$CL_WAIT"; then
		cat "$out"
	else
		kill -9 "$pid" 2>/dev/null || true
		echo TIMEOUT
	fi
	rm -f "$out"
}

expect_write() {
	local want=$1 got
	got=$(write_line "$2" "$3" "$4")
	if [ "$got" != "$want" ]; then
		echo "write of '$4' to $3 on node $2: expected $want, got $got" >&2
		return 1
	fi
}

bg_spawn() {
	local name=$1
	shift
	"$@" >"$T/$name.out" 2>&1 3>&- &
	BG+=("$!")
}

# Drops a reaped PID from BG, so that teardown never signals it again (the
# number may belong to another process by then).
bg_forget() {
	local pid keep=()
	for pid in "${BG[@]}"; do
		[ "$pid" = "$1" ] || keep+=("$pid")
	done
	BG=("${keep[@]}")
}

# SIGTERM, then SIGKILL, to every background command; 10 s in all for
# each round.  One stuck in a FUSE request its daemon never answers does
# not end even then: it is reported, and ends when teardown stops or
# kills that daemon.
bg_stop_all() {
	local pid rc=0 left=()
	local deadline=$(($(date +%s) + 10))
	for pid in "${BG[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${BG[@]}"; do
		reap_pid "$pid" $((deadline - $(date +%s) > 0 ? deadline - $(date +%s) : 0)) ||
			left+=("$pid")
	done
	deadline=$(($(date +%s) + 10))
	for pid in "${left[@]}"; do
		kill -9 "$pid" 2>/dev/null || true
	done
	for pid in "${left[@]}"; do
		if ! reap_pid "$pid" $((deadline - $(date +%s) > 0 ? deadline - $(date +%s) : 0)); then
			echo "process $pid does not end (stuck in a request?)" >&2
			rc=1
		fi
	done
	BG=()
	return $rc
}

writer_start() {
	local id=$1 i=$2 path=$3
	shift 3
	rm -f "$T/writers.stop"
	"$TOOLS/writer" -a "$T/w$id.ack" -e -t "$T/writers.stop" "$@" \
		"${NODE_MNT[i]}/$path" "$id" 100000000 \
		>"$T/w$id.out" 2>"$T/w$id.err" 3>&- &
	W_PID[id]=$!
	BG+=("$!")
}

acked() {
	local f=$T/w$1.ack n
	[ -e "$f" ] || { echo 0; return 0; }
	n=$(awk '$1 == "ok" { n += $3 - $2 + 1 } END { print n + 0 }' "$f")
	echo "$n"
}

acked_at_least() {
	local n
	n=$(acked "$1")
	[ "$n" -ge "$2" ] || { echo "writer $1 has $n acknowledged"; return 1; }
}

wait_acked() { wait_value "$CL_WAIT" acked_at_least "$@"; }

# Errno names of writer ID's failed writes other than EIO, one a line.
writer_other_errors() {
	awk '$1 == "err" && $4 != "EIO" { print $4 }' "$T/w$1.ack" 2>/dev/null |
		sort | uniq -c
}

# Asks every writer to stop before its next write and waits for them (a
# write may wait request.timeout.ms); W_RC[ID] holds each exit status.
writers_stop() {
	local id rc=0
	: >"$T/writers.stop"
	for id in "${!W_PID[@]}"; do
		if reap_pid "${W_PID[id]}" $((CL_WAIT * 2)); then
			W_RC[id]=$REAPED_RC
			bg_forget "${W_PID[id]}"
		else
			echo "writer $id (pid ${W_PID[id]}) did not stop" >&2
			rc=1
		fi
	done
	return $rc
}

# --- topics and lines -------------------------------------------------------

# A topic on every node, each partition with an agreed leader.
make_topic() {
	local t=$1 i
	mkdir "$(on 1)/$t"
	for i in $(up_nodes); do
		wait_for "$CL_WAIT" test -e "$(on "$i")/$t/0"
	done
	wait_leader "$t" 0 >/dev/null
}

# The nodes started but the one given, and the first of them.
others_than() {
	local i
	for i in "${!NODE_STATE[@]}"; do
		if [ "$i" -ne "$1" ]; then
			echo "$i"
		fi
	done
}

first_other_than() {
	others_than "$1" | head -1
}

# The given lines, as the file $T/expected to compare with.
expect_lines() {
	printf '%s\n' "$@" >"$T/expected"
}

# lines_check FILE ONCE MAYBE: the words of ONCE are lines of FILE exactly
# once each and in that order, those of MAYBE at most once, and FILE has
# no other line.
lines_check() {
	local file=$1 once=$2 maybe=$3
	awk -v once="$once" -v maybe="$maybe" '
		BEGIN {
			n = split(once, o, " ")
			for (i = 1; i <= n; i++) want[o[i]] = i
			m = split(maybe, mb, " ")
			for (i = 1; i <= m; i++) may[mb[i]] = 1
		}
		{ seen[$0]++ }
		$0 in want {
			if (want[$0] <= last) { print "out of order: " $0; bad = 1 }
			last = want[$0]
			next
		}
		!($0 in may) { print "unexpected line: " $0; bad = 1 }
		END {
			for (l in seen) if (seen[l] > 1) { print "twice: " l; bad = 1 }
			for (l in want) if (!(l in seen)) { print "missing: " l; bad = 1 }
			exit bad
		}' "$file" >&2
}

# --- signed peer requests ------------------------------------------------

# The X-Topicfs-Mac of a request (include/auth.h): HMAC-SHA256 keyed with
# the secret file's bytes less one trailing newline, over "topicfs-v1\n"
# METHOD TARGET NODE TIME NONCE and hex(SHA-256(body)), each line ended
# by "\n" but the last.  Lowercase hex.
peer_mac() {
	local secret=$1 method=$2 target=$3 node=$4 time=$5 nonce=$6 body=$7
	local key digest
	key=$(od -An -v -tx1 "$secret" | tr -d ' \n')
	key=${key%0a}
	digest=$(openssl dgst -sha256 -r <"$body" | cut -d' ' -f1) || return 1
	printf 'topicfs-v1\n%s\n%s\n%s\n%s\n%s\n%s' "$method" "$target" \
		"$node" "$time" "$nonce" "$digest" |
		openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -r |
		cut -d' ' -f1
}

# Sends a signed request (MAC computed with $T/secret unless given) to
# URL (the node's base URL); the answer's body goes to OUT_FILE; prints
# the HTTP status (000 when nothing answered).
peer_request() {
	local out=$1 url=$2 method=$3 target=$4 node=$5 time=$6 nonce=$7
	local body=$8 mac=${9:-}
	[ -n "$mac" ] || mac=$(peer_mac "$T/secret" "$method" "$target" \
		"$node" "$time" "$nonce" "$body") || return 1
	curl -s -m 10 -o "$out" -w '%{http_code}' -X "$method" \
		-H "X-Topicfs-Node: $node" -H "X-Topicfs-Time: $time" \
		-H "X-Topicfs-Nonce: $nonce" -H "X-Topicfs-Mac: $mac" \
		-H 'Content-Type: application/octet-stream' -H 'Expect:' \
		--data-binary "@$body" "$url$target"
}

# Succeeds when CMD... fails (bats does not fail a test on `! CMD`).
fails() {
	if "$@"; then
		echo "expected to fail: $*" >&2
		return 1
	fi
	return 0
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

rand_hex() {
	od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}
