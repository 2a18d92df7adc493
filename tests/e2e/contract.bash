# Helpers for the contract tests (namespace, writes, errors, xattrs,
# durability, diskfull).  Load after helper.bash.
#
#   pyrun CODE [ARGS...]      run Python with `mnt` = $MNT, `data` = $DATA,
#                             `args` = ARGS, and os, sys, errno, time
#                             imported; an OSError that escapes prints its
#                             errno name (EPERM...) and exits 3.  Helpers:
#                             expect(NAME, f, *a) asserts f(*a) raises
#                             OSError NAME; write_all(fd, b) loops over
#                             short writes; content(path); now_ms()
#   errno_of CODE             prints OK or the errno name CODE raised
#   expect_errno NAME CODE    fails (saying what happened) unless CODE
#                             raises OSError NAME
#   metric NAME TOPIC PART    a partition sample from .topicfs/metrics
#   now_ms                    the wall clock in milliseconds
#   data_entries DIR          the entries of DIR in the data folder, sorted
#   trash_empty               no deleted topic is left in DATA/trash

pyrun() {
	local code=$1
	shift
	python3 -c "
import os, sys, errno, time
mnt = sys.argv[1]
data = sys.argv[2]
args = sys.argv[3:]
def now_ms():
    return time.time_ns() // 1000000
def write_all(fd, b):
    while b:
        n = os.write(fd, b)
        b = b[n:]
def content(p):
    with open(p, 'rb') as f:
        return f.read()
def expect(name, f, *a):
    try:
        f(*a)
    except OSError as e:
        got = errno.errorcode.get(e.errno, str(e.errno))
        assert got == name, 'expected %s, got %s %.200r' % (name, got, a)
        return
    raise AssertionError('expected %s, got success %.200r' % (name, a))
try:
$(printf '%s\n' "$code" | sed 's/^/    /')
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
    sys.exit(3)
" "$MNT" "$DATA" "$@"
}

errno_of() {
	local out rc=0
	out=$(pyrun "$@") || rc=$?
	if [ $rc -eq 0 ]; then
		echo OK
	elif [ $rc -eq 3 ]; then
		printf '%s\n' "$out" | tail -1
	else
		echo "python failed ($rc): $out"
	fi
}

expect_errno() {
	local want=$1 got
	shift
	got=$(errno_of "$@")
	if [ "$got" != "$want" ]; then
		echo "expected $want, got $got from: $1" >&2
		return 1
	fi
}

metric() {
	local v
	v=$(grep -E "^$1\{topic=\"$2\",partition=\"$3\"\} " \
		"$MNT/.topicfs/metrics" | awk '{print $2}')
	[ -n "$v" ] || { echo "no sample $1 for $2/$3" >&2; return 1; }
	echo "$v"
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

data_entries() {
	ls -A "$DATA/$1" | sort
}

# True when no deleted topic is left in the data folder's trash.
trash_empty() {
	[ -z "$(ls -A "$DATA/trash" 2>/dev/null)" ]
}
