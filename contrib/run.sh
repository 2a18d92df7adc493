#!/bin/sh
# make run / make stop: mount a single node for a person to try.
#   contrib/run.sh start|stop TOPICFS_BIN DATA_DIR MOUNTPOINT
set -eu
cmd=$1 bin=$2 data=$3 mnt=$4
conf=$(dirname "$0")/../etc/topicfs.conf

case $cmd in
start)
	if mountpoint -q "$mnt" 2>/dev/null; then
		echo "topicfs: $mnt is already mounted (make stop first)"
		exit 1
	fi
	mkdir -p "$mnt" "$data"
	# A daemon killed with -9 leaves a dead mount: take it over.
	"$bin" -c "$conf" -o takeover "$data" "$mnt"
	cat <<EOT
topicfs is mounted at $mnt (data in $data).  Try:

  mkdir $mnt/tweets                         # create a topic
  echo '{"user":1,"text":"hi"}' >> $mnt/tweets/0   # produce
  cat $mnt/tweets/0                         # read from the start
  tail -f $mnt/tweets/0                     # consume as it grows (polls)
  cat $mnt/tweets/.follow/0                 # consume, pushed, blocks at the end
  getfattr -d $mnt/tweets/0                 # start, end, records
  setfattr -n user.topicfs.partitions -v 4 $mnt/tweets   # grow
  cat $mnt/.topicfs/status                  # JSON status

Logs go to syslog (journalctl -t topicfs).  Stop with: make stop
EOT
	;;
stop)
	if ! grep -qs " $mnt fuse.topicfs " /proc/mounts; then
		echo "topicfs: nothing mounted at $mnt"
		exit 0
	fi
	pid=$(cat "$data/.lock" 2>/dev/null || true)
	fusermount3 -u "$mnt" || {
		echo "topicfs: $mnt is busy; stopping the daemon instead"
		[ -n "$pid" ] && kill -TERM "$pid"
	}
	# Wait for the daemon to finish its checkpoint and exit.
	i=0
	while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	echo "topicfs: unmounted $mnt"
	;;
*)
	echo "usage: $0 start|stop BIN DATA MNT" >&2
	exit 2
	;;
esac
