#!/usr/bin/env bats
# Extended attributes (design.md section 1): read-only partition
# attributes and lookups (offset.N, time.MS), read-write topic settings
# that are validated (EINVAL, nothing changes) and persisted.
#
# Errors chosen for names that are not part of the contract: reading an
# unknown attribute gives ENODATA (as for any attribute a file does not
# have); setting one gives ENOTSUP (the name is not supported); setting
# or removing a partition's attributes gives EPERM (they are the log's),
# and removing a topic's gives EPERM too (a setting always has a value).

load helper
load contract

setup() {
	setup_node
	mkdir "$MNT/t"
}

teardown() {
	teardown_node
}

@test "partition attributes: start, end, records, also on the follow view" {
	[ "$(xget start "$MNT/t/0")" = 0 ]
	[ "$(xget end "$MNT/t/0")" = 0 ]
	[ "$(xget records "$MNT/t/0")" = 0 ]
	pyrun '
fd = os.open(mnt + "/t/0", os.O_WRONLY | os.O_APPEND)
os.write(fd, b"one\ntwo\nthree\n")
os.write(fd, b"four\n")
os.close(fd)
'
	for f in "$MNT/t/0" "$MNT/t/.follow/0"; do
		[ "$(xget start "$f")" = 0 ]
		[ "$(xget end "$f")" = 19 ]
		[ "$(xget records "$f")" = 4 ]
		run getfattr --absolute-names -d "$f"
		[ "$status" -eq 0 ]
		[[ "$output" == *'user.topicfs.end="19"'* ]]
		[[ "$output" == *'user.topicfs.records="4"'* ]]
		[[ "$output" == *'user.topicfs.start="0"'* ]]
	done
	# The size getattr reports is the committed end.
	[ "$(fsize "$MNT/t/0")" -eq 19 ]
}

@test "offset.N: first record, inside a batch, the end, beyond is ENXIO" {
	pyrun '
fd = os.open(mnt + "/t/0", os.O_WRONLY | os.O_APPEND)
os.write(fd, b"r0\nr1\nr2\n")   # one batch of three records
os.write(fd, b"r3-xx\n")
os.write(fd, b"r4\n")
os.close(fd)
p = mnt + "/t/0"
def off(n):
    return int(os.getxattr(p, "user.topicfs.offset.%s" % n))
assert [off(i) for i in range(6)] == [0, 3, 6, 9, 15, 18]
expect("ENXIO", os.getxattr, p, "user.topicfs.offset.6")
expect("ENXIO", os.getxattr, p, "user.topicfs.offset.18446744073709551615")
for bad in ["-1", "x", "", "1.5", "18446744073709551616"]:
    expect("ENODATA", os.getxattr, p, "user.topicfs.offset." + bad)
'
	[ "$(xget offset.2 "$MNT/t/0")" = 6 ]
	[ "$(xget offset.5 "$MNT/t/.follow/0")" = 18 ]
}

@test "offset.N across segments finds every record" {
	xset segment.bytes 4K "$MNT/t"
	pyrun '
p = mnt + "/t/0"
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
offs, pos = [], 0
for i in range(400):
    recs = b"".join(b"rec %d.%d %s\n" % (i, j, b"z" * (i % 50))
                    for j in range(1 + i % 3))
    for j in range(1 + i % 3):
        offs.append(pos)
        pos += len(b"rec %d.%d %s\n" % (i, j, b"z" * (i % 50)))
    os.write(fd, recs)
os.close(fd)
segs = [f for f in os.listdir(data + "/topics/t/0") if f.endswith(".log")]
assert len(segs) > 5, segs
for n in list(range(0, len(offs), 7)) + [len(offs) - 1]:
    got = int(os.getxattr(p, "user.topicfs.offset.%d" % n))
    assert got == offs[n], (n, got, offs[n])
    with open(p, "rb") as f:
        f.seek(got)
        assert f.readline().startswith(b"rec "), n
assert int(os.getxattr(p, "user.topicfs.offset.%d" % len(offs))) == pos
'
}

@test "time.MS: the first record committed at or after a time" {
	pyrun '
p = mnt + "/t/0"
def at(ms):
    return int(os.getxattr(p, "user.topicfs.time.%d" % ms))
def after(ms):
    # Waits for the wall clock to pass ms (not a bare sleep).
    while now_ms() <= ms:
        time.sleep(0.002)
assert at(now_ms()) == 0                 # empty: the end
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
t0 = now_ms()
after(t0)
os.write(fd, b"a1\na2\n")                # committed after t0
t1 = now_ms()
after(t1 + 5)
mid = now_ms()
after(mid + 5)
os.write(fd, b"b1\n")                    # committed after mid
t2 = now_ms()
after(t2 + 5)
os.write(fd, b"c1\n")
os.close(fd)
assert at(0) == 0
assert at(t0) == 0 and at(t0 - 3600000) == 0
assert at(mid) == 6, at(mid)             # between the batches: b1
assert at(t2 + 1) == 9, at(t2 + 1)       # between b1 and c1: c1
assert at(now_ms() + 60000) == 12        # the future: the end
assert at(2 ** 62) == 12
for bad in ["-1", "x", "9223372036854775808"]:
    expect("ENODATA", os.getxattr, p, "user.topicfs.time." + bad)
'
}

@test "topic settings: every key readable, settable, and kept across restart" {
	local keys k
	# Every topic attribute, a valid value for it, and how it reads back.
	# A key the daemon lists but this table misses fails the test.
	declare -A NEW=(
		[partitions]="3 3"
		[retention.ms]="1h 3600000"
		[retention.bytes]="1M 1048576"
		[segment.bytes]="64K 65536"
		[segment.ms]="2h 7200000"
		[compression]="zstd zstd"
		[compression.level]="5 5"
		[compression.frame.bytes]="64KiB 65536"
		[durability]="sync sync"
		[min.insync.replicas]="1 1"
		[acks]="1 1"
	)
	keys=$(getfattr --absolute-names -d "$MNT/t" | sed -n 's/^user\.topicfs\.\([^=]*\)=.*/\1/p')
	[ "$(echo "$keys" | wc -l)" -ge 9 ]
	for k in $keys; do
		[ -n "${NEW[$k]:-}" ] || { echo "no test value for $k" >&2; return 1; }
		xget "$k" "$MNT/t" >/dev/null
		xset "$k" "${NEW[$k]% *}" "$MNT/t"
		[ "$(xget "$k" "$MNT/t")" = "${NEW[$k]#* }" ]
	done
	# A value written with echo's newline is fine.
	pyrun 'os.setxattr(mnt + "/t", "user.topicfs.retention.ms", b"2h\n")'
	NEW[retention.ms]="2h 7200000"
	[ "$(xget retention.ms "$MNT/t")" = 7200000 ]
	grep -q '"retention.ms"' "$DATA/topics/t/topic.json"
	pyrun '
import json
st = json.load(open(mnt + "/.topicfs/status"))
t = st["topics"][0]
assert t["partition_count"] == 3
assert t["config"]["retention.ms"] == "7200000", t["config"]
assert "durability" in t["config"]["overridden"], t["config"]
'
	# Another topic keeps the defaults.
	mkdir "$MNT/u"
	[ "$(xget retention.ms "$MNT/u")" = 604800000 ]
	[ "$(xget durability "$MNT/u")" = async ]
	stop_node
	start_node
	for k in $keys; do
		[ "$(xget "$k" "$MNT/t")" = "${NEW[$k]#* }" ]
	done
	[ "$(xget retention.ms "$MNT/u")" = 604800000 ]
	# Daemon defaults change what follows them, not what a topic set.
	stop_node
	start_node -o retention.ms=1d -o durability=sync
	[ "$(xget retention.ms "$MNT/u")" = 86400000 ]
	[ "$(xget durability "$MNT/u")" = sync ]
	[ "$(xget retention.ms "$MNT/t")" = 7200000 ]
}

@test "invalid topic values are EINVAL and change nothing" {
	xset partitions 3 "$MNT/t"
	xset retention.ms 1h "$MNT/t"
	local before json
	before=$(getfattr --absolute-names -d "$MNT/t")
	json=$(md5sum <"$DATA/topics/t/topic.json")
	pyrun '
p = mnt + "/t"
bad = {
    "retention.ms": ["abc", "-5", "-2", "1x", "", "1.5h", "1H", "99999999999999999999d"],
    "retention.bytes": ["-2", "1Q", "abc", "1.5M"],
    "segment.bytes": ["0", "1", "1K", "17G", "-1", "x"],
    "segment.ms": ["0", "500ms", "-1", "y"],
    "compression": ["gzip", "ZSTD", "", "none zstd"],
    "compression.level": ["0", "20", "-1", "x"],
    "compression.frame.bytes": ["1K", "17M", "x"],
    "durability": ["maybe", "SYNC", "1", ""],
    "partitions": ["0", "-1", "abc", "1.5", "2", "4294967296", "2000000", ""],
}
for key, values in bad.items():
    for v in values:
        expect("EINVAL", os.setxattr, p, "user.topicfs." + key, v.encode())
# Bytes that are not text.
expect("EINVAL", os.setxattr, p, "user.topicfs.retention.ms", b"1\x00h")
expect("EINVAL", os.setxattr, p, "user.topicfs.retention.ms", b"9" * 300)
'
	[ "$(getfattr --absolute-names -d "$MNT/t")" = "$before" ]
	[ "$(md5sum <"$DATA/topics/t/topic.json")" = "$json" ]
	[ "$(ls "$MNT/t" | tr '\n' ' ')" = "0 1 2 " ]
	grep -q 'partitions 2 refused: may only grow' "$LOG"
}

@test "partitions may only grow, and new partitions work at once" {
	echo p0 >>"$MNT/t/0"
	xset partitions 2 "$MNT/t"
	xset partitions 5 "$MNT/t"
	xset partitions 5 "$MNT/t" # the same count is fine
	[ "$(ls "$MNT/t" | tr '\n' ' ')" = "0 1 2 3 4 " ]
	[ "$(ls "$MNT/t/.follow" | tr '\n' ' ')" = "0 1 2 3 4 " ]
	[ "$(data_entries topics/t | grep -c '^[0-9]')" -eq 5 ]
	run setfattr -n user.topicfs.partitions -v 4 "$MNT/t"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
	[ "$(xget partitions "$MNT/t")" = 5 ]
	for p in 1 4; do
		echo "p$p" >>"$MNT/t/$p"
		[ "$(cat "$MNT/t/$p")" = "p$p" ]
	done
	[ "$(cat "$MNT/t/0")" = p0 ]
	stop_node
	start_node
	[ "$(xget partitions "$MNT/t")" = 5 ]
	[ "$(cat "$MNT/t/4")" = p4 ]
}

@test "unknown attributes: ENODATA to read, ENOTSUP to set; the log's are read-only" {
	echo x >>"$MNT/t/0"
	pyrun '
t, p = mnt + "/t", mnt + "/t/0"
for f in [t, p, mnt, mnt + "/.topicfs/status", mnt + "/t/.follow"]:
    expect("ENODATA", os.getxattr, f, "user.topicfs.nosuch")
    expect("ENODATA", os.getxattr, f, "user.other")
expect("ENODATA", os.getxattr, t, "user.topicfs.records")     # a partition one
expect("ENODATA", os.getxattr, p, "user.topicfs.retention.ms")  # a topic one
expect("ENODATA", os.getxattr, t, "user.topicfs.flush.ms")     # a daemon key
expect("ENOTSUP", os.setxattr, t, "user.topicfs.nosuch", b"1")
expect("ENOTSUP", os.setxattr, t, "user.topicfs.flush.ms", b"1s")
expect("ENOTSUP", os.setxattr, t, "user.other", b"1")
expect("ENOTSUP", os.setxattr, p, "user.topicfs.nosuch", b"1")
expect("ENOTSUP", os.setxattr, mnt, "user.topicfs.retention.ms", b"1h")
for k in ["start", "end", "records", "offset.0", "time.0"]:
    expect("EPERM", os.setxattr, p, "user.topicfs." + k, b"0")
expect("EPERM", os.removexattr, t, "user.topicfs.retention.ms")
expect("EPERM", os.removexattr, p, "user.topicfs.end")
expect("ENODATA", os.removexattr, t, "user.other")
# Every topic attribute always exists: XATTR_CREATE is EEXIST.
expect("EEXIST", os.setxattr, t, "user.topicfs.retention.ms", b"1h", os.XATTR_CREATE)
assert sorted(os.listxattr(p)) == ["user.topicfs.end", "user.topicfs.records",
                                   "user.topicfs.start"]
assert "user.topicfs.partitions" in os.listxattr(t)
'
	[ "$(xget retention.ms "$MNT/t")" = 604800000 ]
}
