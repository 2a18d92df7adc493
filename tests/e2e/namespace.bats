#!/usr/bin/env bats
# The namespace of design.md section 1: topics are made by mkdir and only
# by mkdir, with Kafka's name rule; rmdir deletes when delete.topic.enable
# is on; partitions are fixed files that cannot be created, renamed or
# unlinked; .topicfs/status and .topicfs/metrics describe it all.

load helper
load contract

setup() {
	if [ "$BATS_TEST_DESCRIPTION" = "rmdir with delete.topic.enable=false is EPERM and keeps the data" ]; then
		setup_node -o delete.topic.enable=false
	else
		setup_node -o num.partitions=3
	fi
}

teardown() {
	teardown_node
}

@test "mkdir creates a topic with num.partitions partition files" {
	mkdir "$MNT/tweets"
	[ -d "$MNT/tweets" ]
	[ "$(ls "$MNT/tweets" | tr '\n' ' ')" = "0 1 2 " ]
	[ "$(ls -A "$MNT/tweets" | tr '\n' ' ')" = ".follow 0 1 2 " ]
	[ "$(ls "$MNT/tweets/.follow" | tr '\n' ' ')" = "0 1 2 " ]
	[ "$(ls "$MNT" | tr '\n' ' ')" = "tweets " ]
	for p in 0 1 2; do
		[ -f "$MNT/tweets/$p" ]
		[ "$(fsize "$MNT/tweets/$p")" -eq 0 ]
		[ -d "$DATA/topics/tweets/$p" ]
	done
	[ "$(xget partitions "$MNT/tweets")" = 3 ]
	# Nothing else appeared beside it in the data folder.
	[ "$(data_entries topics | tr '\n' ' ')" = "tweets " ]
	# Partition files: regular, append-only by rule, 1 MiB blocks.
	[[ "$(stat -c %F "$MNT/tweets/0")" == regular*file ]]
	[ "$(stat -c %o "$MNT/tweets/0")" -eq 1048576 ]
}

@test "invalid topic names are EINVAL and create nothing, 249 characters work" {
	local before n249
	before=$(data_entries topics)
	pyrun '
for name in [".x", "..x", ".hidden", "a b", "a:b", "a*b", "t\u00e9st",
             "\u65e5\u672c", "a\\b", "b" * 250, "tab\tx", "x\x01", "a+b",
             "a,b", "a=b", "a@b", " x", "x "]:
    expect("EINVAL", os.mkdir, os.path.join(mnt, name))
    assert not os.path.exists(os.path.join(mnt, name)), name
'
	[ "$(data_entries topics)" = "$before" ]
	[ "$(ls -A "$MNT")" = .topicfs ]
	# Every allowed character, and the longest name.
	n249=$(printf 'a%.0s' $(seq 249))
	mkdir "$MNT/Az09._-x" "$MNT/$n249" "$MNT/-" "$MNT/_"
	[ -f "$MNT/$n249/0" ]
	[ -d "$DATA/topics/$n249" ]
	echo hello >>"$MNT/$n249/0"
	[ "$(cat "$MNT/$n249/0")" = hello ]
	[ "$(data_entries topics | wc -l)" -eq 4 ]
}

@test "mkdir of an existing topic is EEXIST, mkdir elsewhere is refused" {
	mkdir "$MNT/t"
	echo one >>"$MNT/t/0"
	pyrun '
expect("EEXIST", os.mkdir, mnt + "/t")
expect("EEXIST", os.mkdir, mnt + "/.topicfs")
expect("EPERM", os.mkdir, mnt + "/t/sub")
expect("EPERM", os.mkdir, mnt + "/t/.follow/sub")
expect("EPERM", os.mkdir, mnt + "/.topicfs/sub")
'
	# The existing topic is untouched.
	[ "$(cat "$MNT/t/0")" = one ]
	[ "$(data_entries topics)" = t ]
}

@test "rmdir deletes a topic, its partitions and its data" {
	mkdir "$MNT/gone" "$MNT/kept"
	for i in $(seq 1 200); do echo "record $i"; done >>"$MNT/gone/1"
	echo keep >>"$MNT/kept/0"
	[ -d "$DATA/topics/gone/1" ]
	rmdir "$MNT/gone"
	[ ! -e "$MNT/gone" ]
	expect_errno ENOENT 'os.stat(mnt + "/gone/1")'
	[ "$(ls "$MNT")" = kept ]
	# The files go in the background.
	wait_for 10 test ! -e "$DATA/topics/gone"
	wait_for 10 trash_empty
	run grep -rqs 'record 1' "$DATA"
	[ "$status" -eq 1 ]
	[ "$(cat "$MNT/kept/0")" = keep ]
	# The name can be used again, for a new, empty topic.
	mkdir "$MNT/gone"
	[ "$(fsize "$MNT/gone/1")" -eq 0 ]
	[ "$(xget records "$MNT/gone/1")" = 0 ]
	echo again >>"$MNT/gone/1"
	[ "$(cat "$MNT/gone/1")" = again ]
}

@test "rmdir deletes a topic with a 249-character name, whatever its id" {
	# Topic ids are never reused, so they grow; the trash entry of a
	# deleted topic is named after both and must still fit NAME_MAX.
	stop_node
	printf 'topicfs-store 1\nnext_topic_id 4000000000\n' >"$DATA/meta"
	start_node -o num.partitions=3
	local n249
	n249=$(printf 'a%.0s' $(seq 249))
	mkdir "$MNT/$n249"
	echo data >>"$MNT/$n249/0"
	rmdir "$MNT/$n249"
	[ ! -e "$MNT/$n249" ]
	wait_for 10 test ! -e "$DATA/topics/$n249"
	wait_for 10 trash_empty
	mkdir "$MNT/$n249"
	[ "$(fsize "$MNT/$n249/0")" -eq 0 ]
}

@test "rmdir of a topic with a reader open: the reader ends, the data goes" {
	mkdir "$MNT/t"
	echo one >>"$MNT/t/0"
	exec 7<"$MNT/t/.follow/0"
	rmdir "$MNT/t"
	wait_for 10 test ! -e "$DATA/topics/t"
	wait_for 10 trash_empty
	# A later read of the open file fails or ends; it never blocks.
	run timeout 5 cat <&7
	[ "$status" -ne 124 ]
	exec 7<&-
}

@test "rmdir with delete.topic.enable=false is EPERM and keeps the data" {
	mkdir "$MNT/t"
	echo stays >>"$MNT/t/0"
	expect_errno EPERM 'os.rmdir(mnt + "/t")'
	[ -d "$MNT/t" ]
	[ "$(cat "$MNT/t/0")" = stays ]
	[ -d "$DATA/topics/t/0" ]
	stop_node
	start_node -o delete.topic.enable=false
	[ "$(cat "$MNT/t/0")" = stays ]
}

@test "rmdir of .follow, .topicfs or a missing topic is refused" {
	mkdir "$MNT/t"
	pyrun '
expect("EPERM", os.rmdir, mnt + "/t/.follow")
expect("EPERM", os.rmdir, mnt + "/.topicfs")
expect("ENOENT", os.rmdir, mnt + "/nosuch")
expect("ENOTDIR", os.rmdir, mnt + "/t/0")
'
	[ -d "$MNT/t/.follow" ]
	[ -f "$MNT/.topicfs/status" ]
}

@test "no file can be created: unknown names and partitions beyond the count are EPERM" {
	mkdir "$MNT/t"
	pyrun '
A, C = os.O_WRONLY | os.O_APPEND, os.O_CREAT
expect("EPERM", open, mnt + "/t/newfile", "a")
expect("EPERM", os.open, mnt + "/t/3", A | C)
expect("EPERM", os.open, mnt + "/t/99", os.O_WRONLY | C | os.O_EXCL)
expect("EPERM", os.open, mnt + "/rootfile", os.O_WRONLY | C)
expect("EPERM", os.open, mnt + "/t/.follow/7", os.O_RDONLY | C)
expect("EPERM", os.mknod, mnt + "/t/fifo", 0o600 | 0o010000)
expect("EPERM", os.symlink, "0", mnt + "/t/link")
expect("EPERM", os.link, mnt + "/t/0", mnt + "/t/hard")
# Without O_CREAT a missing partition is just missing.
expect("ENOENT", os.open, mnt + "/t/3", A)
expect("ENOENT", os.stat, mnt + "/t/007")
# Nothing is auto-created by a write or a lookup.
expect("ENOENT", open, mnt + "/nosuch/0", "a")
expect("ENOENT", os.stat, mnt + "/nosuch")
'
	run touch "$MNT/t/newfile"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run sh -c "echo x >>'$MNT/t/3'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	[ "$(ls -A "$MNT/t" | tr '\n' ' ')" = ".follow 0 1 2 " ]
	[ "$(ls "$MNT")" = t ]
	[ "$(data_entries topics/t | grep -c '^[0-9]')" -eq 3 ]
	# touch of an existing partition only sets times, which are the log's.
	touch "$MNT/t/0"
	[ "$(fsize "$MNT/t/0")" -eq 0 ]
}

@test "partitions cannot be unlinked, renamed or truncated; chmod and chown change only the mode and owner" {
	mkdir "$MNT/t" "$MNT/u"
	echo data >>"$MNT/t/0"
	pyrun '
expect("EPERM", os.unlink, mnt + "/t/0")
expect("EPERM", os.unlink, mnt + "/t/.follow/0")
expect("EPERM", os.unlink, mnt + "/.topicfs/status")
expect("EPERM", os.rename, mnt + "/t/0", mnt + "/t/1")
expect("EPERM", os.rename, mnt + "/t/0", mnt + "/t/9")
expect("EPERM", os.rename, mnt + "/t/0", mnt + "/u/0")
expect("EPERM", os.rename, mnt + "/t", mnt + "/v")
expect("EPERM", os.truncate, mnt + "/t/0", 0)
os.chmod(mnt + "/t/0", 0o600)
os.chown(mnt + "/t/0", 1, 1)
st = os.stat(mnt + "/t/0")
assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o600, 1, 1), st
assert oct(os.stat(mnt + "/t/1").st_mode & 0o7777) == "0o644"
'
	run rm -f "$MNT/t/0"
	[ "$status" -ne 0 ]
	run mv "$MNT/t/0" "$MNT/t/2"
	[ "$status" -ne 0 ]
	[ "$(cat "$MNT/t/0")" = data ]
	[ "$(fsize "$MNT/t/2")" -eq 0 ]
	[ "$(ls "$MNT" | tr '\n' ' ')" = "t u " ]
}

@test ".topicfs/status is JSON describing every topic and partition" {
	mkdir "$MNT/a" "$MNT/b"
	pyrun 'fd = os.open(mnt + "/a/1", os.O_WRONLY | os.O_APPEND)
os.write(fd, b"one\ntwo\n")'
	echo x >>"$MNT/b/2"
	python3 -m json.tool "$MNT/.topicfs/status" >/dev/null
	pyrun '
import json
st = json.load(open(mnt + "/.topicfs/status"))
assert st["node"]["mountpoint"] == os.path.realpath(mnt), st["node"]
assert st["node"]["open_handles"] >= 1
topics = {t["name"]: t for t in st["topics"]}
assert sorted(topics) == ["a", "b"], topics.keys()
for name, t in topics.items():
    assert t["partition_count"] == 3 and len(t["partitions"]) == 3
    for p in t["partitions"]:
        size = os.stat("%s/%s/%d" % (mnt, name, p["partition"])).st_size
        assert p["end"] == size and p["start"] == 0, (name, p)
        assert p["state"] == "ok", p
a1 = topics["a"]["partitions"][1]
assert a1["records"] == 2 and a1["end"] == 8 and a1["appends"] == 1, a1
assert topics["b"]["partitions"][2]["records"] == 1
'
}

@test ".topicfs/metrics has the samples of every partition" {
	mkdir "$MNT/m"
	pyrun 'fd = os.open(mnt + "/m/0", os.O_WRONLY | os.O_APPEND)
os.write(fd, b"one\ntwo\n")
os.write(fd, b"three\n")'

	cat "$MNT/m/0" >/dev/null
	[ "$(metric topicfs_partition_end_bytes m 0)" -eq 14 ]
	[ "$(metric topicfs_partition_records m 0)" -eq 3 ]
	[ "$(metric topicfs_partition_appends_total m 0)" -eq 2 ]
	[ "$(metric topicfs_partition_append_records_total m 0)" -eq 3 ]
	[ "$(metric topicfs_partition_start_bytes m 0)" -eq 0 ]
	[ "$(metric topicfs_partition_failed m 0)" -eq 0 ]
	[ "$(metric topicfs_partition_reads_total m 0)" -ge 1 ]
	for p in 1 2; do
		[ "$(metric topicfs_partition_end_bytes m $p)" -eq 0 ]
	done
	grep -q '^topicfs_topics 1$' "$MNT/.topicfs/metrics"
	grep -q '^topicfs_uptime_seconds ' "$MNT/.topicfs/metrics"
	grep -q '^topicfs_open_handles ' "$MNT/.topicfs/metrics"
	# Every sample line is "name{labels} number" or "name number".
	run grep -vE '^(#.*|[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+)$' "$MNT/.topicfs/metrics"
	[ "$status" -eq 1 ]
}

@test "status and metrics survive readers that close as soon as they have read" {
	# A reader closing right after its read raced the reply of that read
	# (a use-after-free the sanitizer build reports; make check).
	mkdir "$MNT/t"
	pyrun '
fd = os.open(mnt + "/t/0", os.O_WRONLY | os.O_APPEND)
for i in range(1500):
    os.write(fd, b"line %d\n" % i)
    for name in ["metrics", "status"]:
        with open(mnt + "/.topicfs/" + name, "rb") as f:
            assert len(f.read(100)) == 100
os.close(fd)
'
	[ "$(metric topicfs_partition_records t 0)" -eq 1500 ]
}
