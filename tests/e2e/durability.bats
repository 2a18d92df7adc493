#!/usr/bin/env bats
# Durability (design.md section 1): restarts keep every byte, offset,
# setting and partition count; after kill -9 everything fsync()ed is
# there and nothing torn is visible; fsync(), flush.ms and
# durability=sync make data durable when they promise to.
#
# TOPICFS_SOAK=1 runs the kill -9 test for 25 rounds instead of 3.
#
# Group commit, as measured here: the kernel serialises O_APPEND writes
# (and fsync) to one inode, holding the inode lock until the daemon
# answers.  So with durability=sync one partition never has a second
# append queued behind a running fsync: every sync write gets its own
# fsync (fsyncs == appends on each partition); writers on different
# partitions proceed in parallel on the sync threads.  The test below
# asserts what the kernel allows (every write durable when it returns,
# at most one fsync per append, all partitions progressing at once) and
# prints the counts.

load helper
load contract

setup() {
	case "$BATS_TEST_DESCRIPTION" in
	kill*) setup_node -o flush.ms=100 ;; # checkpoints while writing
	*flush.ms=1h*) setup_node -o flush.ms=1h ;;
	*-o\ durability=sync*) setup_node -o durability=sync,flush.ms=1h ;;
	*) setup_node ;;
	esac
}

teardown() {
	teardown_node
}

# Prints everything a restart must keep: contents, sizes, records,
# lookups, settings, the namespace.
snapshot() {
	local t p
	for t in $(ls "$MNT"); do
		echo "topic $t $(ls -A "$MNT/$t" | tr '\n' ' ')"
		getfattr --absolute-names -d "$MNT/$t" | sort
		for p in $(ls "$MNT/$t"); do
			echo "$t/$p $(md5sum <"$MNT/$t/$p") $(fsize "$MNT/$t/$p")"
			for a in start end records offset.0 offset.7 time.0; do
				echo "$a=$(xget $a "$MNT/$t/$p" 2>/dev/null)"
			done
			local n
			n=$(xget records "$MNT/$t/$p" 2>/dev/null)
			echo "last=$(xget offset.$((n > 0 ? n - 1 : 0)) "$MNT/$t/$p" 2>/dev/null)"
			echo "mid=$(xget offset.$((n / 2)) "$MNT/$t/$p" 2>/dev/null)"
		done
	done
}

@test "restart keeps bytes, offsets, records, settings and partition counts" {
	mkdir "$MNT/a" "$MNT/b" "$MNT/c"
	xset partitions 3 "$MNT/a"
	xset segment.bytes 64K "$MNT/a"
	xset retention.ms 1h "$MNT/b"
	xset durability sync "$MNT/b"
	xset compression.level 7 "$MNT/c"
	for i in 0 1 2; do
		"$TOOLS/writer" "$MNT/a/$i" "$i" 1500 &
		pids+=($!)
	done
	"$TOOLS/writer" -C 4K "$MNT/b/0" 7 300
	wait "${pids[@]}"
	# Several segments, then a partition more.
	[ "$(ls "$DATA/topics/a/0" | grep -c '\.log$')" -gt 5 ]
	xset partitions 4 "$MNT/a"
	echo "new partition" >>"$MNT/a/3"
	snapshot >"$T/before"
	stop_node
	start_node
	snapshot >"$T/after"
	diff "$T/before" "$T/after"
	for i in 0 1 2; do
		"$TOOLS/checkrecords" -W 1 -n 1500 "$MNT/a/$i"
	done
	"$TOOLS/checkrecords" -W 1 -n 300 "$MNT/b/0"
	# A clean stop leaves no torn tail to cut at the next start.
	run grep -c ': cut [0-9]* bytes' "$LOG"
	[ "$output" = 0 ]
	# And after a kill -9 with nothing in flight, the same again.
	crash_node
	start_node
	snapshot >"$T/after"
	diff "$T/before" "$T/after"
	# Appends continue at the same offsets.
	end=$(fsize "$MNT/a/0")
	echo more >>"$MNT/a/0"
	[ "$(xget offset.1500 "$MNT/a/0")" = "$end" ]
}

# One round: writers that fsync, kill -9 at a random moment, remount,
# check.  Writer ids grow with the round so every round's records are
# checked again in the rounds after it.
crash_round() {
	local r=$1 i id pids=() files=(t/0 t/0 t/1) ks=(50 17 80)
	for i in 0 1 2; do
		id=$((r * 3 + i))
		"$TOOLS/writer" -k "${ks[i]}" -C 128K "$MNT/${files[i]}" "$id" \
			100000000 >"$T/synced.$id" 2>"$T/writer.$id.err" &
		pids+=($!)
	done
	# Every writer has fsynced at least once, then a random moment.  (A
	# generous bound: under make tsan, on a loaded machine, 20 s was
	# once not enough for the first fsync.)
	for i in 0 1 2; do
		wait_for 60 test -s "$T/synced.$((r * 3 + i))"
	done
	sleep "0.$((RANDOM % 400 + 10))"
	crash_node
	for i in "${pids[@]}"; do
		wait "$i" || true
	done
	start_node -o flush.ms=100
	# Every record up to the last fsynced one of every writer so far.
	local -A need=()
	for ((id = 0; id < (r + 1) * 3; id++)); do
		[ -s "$T/synced.$id" ] || continue
		need[$id]="-a $id:$(tail -n 1 "$T/synced.$id")"
	done
	local p0=() p1=()
	for id in "${!need[@]}"; do
		if [ $((id % 3)) -eq 2 ]; then
			p1+=(${need[$id]})
		else
			p0+=(${need[$id]})
		fi
	done
	"$TOOLS/checkrecords" "${p0[@]}" -W $(((r + 1) * 2)) "$MNT/t/0" >"$T/check.0"
	"$TOOLS/checkrecords" "${p1[@]}" -W $((r + 1)) "$MNT/t/1" >"$T/check.1"
	# The node takes writes again at once.
	echo "round $r" >>"$T/rounds"
}

@test "kill -9 under writers that fsync: every fsynced record survives, nothing torn" {
	local rounds=${TOPICFS_SOAK:+25}
	rounds=${rounds:-3}
	mkdir "$MNT/t"
	xset partitions 2 "$MNT/t"
	for ((r = 0; r < rounds; r++)); do
		crash_round "$r"
	done
	[ "$(wc -l <"$T/rounds")" -eq "$rounds" ]
	cat "$T/check.0" "$T/check.1"
	# Recovery checked batches after the checkpoint and found it whole,
	# or cut a torn tail: both are logged.
	grep -qE 'since the checkpoint|cut [0-9]+ bytes' "$LOG"
}

@test "fsync() makes written data durable (flush.ms=1h)" {
	mkdir "$MNT/t"
	pyrun '
import subprocess
def m(name):
    for line in open(mnt + "/.topicfs/metrics"):
        if line.startswith(name + "{topic=\"t\",partition=\"0\"} "):
            return int(float(line.split()[1]))
    raise AssertionError("no " + name)
fd = os.open(mnt + "/t/0", os.O_WRONLY | os.O_APPEND)
for i in range(5):
    os.write(fd, b"line %d\n" % i)
    assert m("topicfs_partition_end_bytes") > m("topicfs_partition_durable_bytes")
    f0 = m("topicfs_partition_fsyncs_total")
    os.fsync(fd)
    assert m("topicfs_partition_durable_bytes") == m("topicfs_partition_end_bytes")
    assert m("topicfs_partition_fsyncs_total") == f0 + 1
# fsync with nothing new to sync returns at once and syncs nothing.
f0 = m("topicfs_partition_fsyncs_total")
os.fsync(fd)
os.fdatasync(fd)
assert m("topicfs_partition_fsyncs_total") == f0
os.close(fd)
'
}

@test "flush.ms bounds how long written data stays unsynced" {
	stop_node
	start_node -o flush.ms=200
	mkdir "$MNT/t"
	echo one >>"$MNT/t/0"
	wait_for 5 sh -c "[ \$(grep '^topicfs_partition_durable_bytes{topic=\"t\",partition=\"0\"}' '$MNT/.topicfs/metrics' | cut -d' ' -f2) = 4 ]"
	[ "$(metric topicfs_partition_fsyncs_total t 0)" -ge 1 ]
	# The checkpoint follows the flush too.
	wait_for 5 grep -q '^recovery_point 4 1$' "$DATA/topics/t/0/checkpoint"
}

@test "durability=sync on a topic: every write is durable when it returns (flush.ms=1h)" {
	mkdir "$MNT/s" "$MNT/a"
	xset durability sync "$MNT/s"
	pyrun '
def m(name, t):
    for line in open(mnt + "/.topicfs/metrics"):
        if line.startswith(name + "{topic=\"%s\",partition=\"0\"} " % t):
            return int(float(line.split()[1]))
    raise AssertionError("no " + name)
s = os.open(mnt + "/s/0", os.O_WRONLY | os.O_APPEND)
a = os.open(mnt + "/a/0", os.O_WRONLY | os.O_APPEND)
for i in range(20):
    os.write(s, b"sync %d\n" % i)
    assert m("topicfs_partition_durable_bytes", "s") == m("topicfs_partition_end_bytes", "s")
    os.write(a, b"async %d\n" % i)
# The async topic is not synced before flush.ms (1h) or an fsync.
assert m("topicfs_partition_durable_bytes", "a") < m("topicfs_partition_end_bytes", "a")
assert m("topicfs_partition_fsyncs_total", "a") == 0
f = m("topicfs_partition_fsyncs_total", "s")
assert 1 <= f <= 20, f
# A held partial line committed at close is synced before close returns.
os.write(s, b"partial")
os.close(s)
assert m("topicfs_partition_durable_bytes", "s") == m("topicfs_partition_end_bytes", "s")
assert content(mnt + "/s/0").endswith(b"sync 19\npartial\n")
os.close(a)
'
	# Back to async: writes return before they are durable.
	xset durability async "$MNT/s"
	echo later >>"$MNT/s/0"
	[ "$(metric topicfs_partition_durable_bytes s 0)" -lt "$(metric topicfs_partition_end_bytes s 0)" ]
}

@test "-o durability=sync: concurrent writers on several partitions, fsyncs counted" {
	mkdir "$MNT/t" "$MNT/own"
	xset partitions 4 "$MNT/t"
	xset durability async "$MNT/own" # a topic's own setting wins
	[ "$(xget durability "$MNT/t")" = sync ]
	local pids=() i files=(t/0 t/1 t/2 t/3 t/0 t/0)
	for i in 0 1 2 3 4 5; do
		"$TOOLS/writer" -c 200 -C 20K -L 2K "$MNT/${files[i]}" "$i" 300 &
		pids+=($!)
	done
	echo "own" >>"$MNT/own/0"
	for i in "${pids[@]}"; do
		wait "$i"
	done
	"$TOOLS/checkrecords" -W 3 -n 300 "$MNT/t/0"
	for p in 1 2 3; do
		"$TOOLS/checkrecords" -W 1 -n 300 "$MNT/t/$p"
	done
	for p in 0 1 2 3; do
		local appends fsyncs
		appends=$(metric topicfs_partition_appends_total t $p)
		fsyncs=$(metric topicfs_partition_fsyncs_total t $p)
		echo "partition $p: $appends appends, $fsyncs fsyncs"
		[ "$(metric topicfs_partition_durable_bytes t $p)" -eq "$(metric topicfs_partition_end_bytes t $p)" ]
		[ "$fsyncs" -ge 1 ]
		[ "$fsyncs" -le "$appends" ]
	done
	[ "$(metric topicfs_partition_durable_bytes own 0)" -lt "$(metric topicfs_partition_end_bytes own 0)" ]
}

@test "kill -9 during mkdir, partition growth and rmdir leaves a consistent namespace" {
	local r bg t n p rounds=${TOPICFS_SOAK:+20}
	for ((r = 0; r < ${rounds:-3}; r++)); do
		(
			for i in $(seq 1 40); do
				mkdir "$MNT/t$r-$i" || exit 0
				setfattr -n user.topicfs.partitions -v $((i % 5 + 1)) "$MNT/t$r-$i" || exit 0
				echo "x $i" >>"$MNT/t$r-$i/0" || exit 0
				if [ $((i % 3)) -eq 0 ]; then
					rmdir "$MNT/t$r-$i" || exit 0
				fi
			done
		) 2>/dev/null &
		bg=$!
		sleep "0.$((RANDOM % 300 + 20))"
		crash_node
		wait "$bg" || true
		start_node
		# Every topic is whole: its partition count, its partition
		# files and directories agree; no half-made topic shows.
		for t in $(ls "$MNT"); do
			n=$(xget partitions "$MNT/$t" 2>/dev/null)
			[ "$(ls "$MNT/$t" | wc -l)" -eq "$n" ]
			[ "$(data_entries "topics/$t" | grep -c '^[0-9]')" -eq "$n" ]
			for p in $(ls "$MNT/$t"); do
				cat "$MNT/$t/$p" >/dev/null
			done
		done
		run data_entries topics
		[[ "$output" != *".new-"* ]]
	done
	wait_for 10 trash_empty
}
