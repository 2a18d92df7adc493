#!/bin/sh
# Puts a private syslog-ng under build/syslog-ng/ for the log-shipper
# tests, without installing it.
#
# Debian's syslog-ng-core conflicts with rsyslog (both provide
# system-log-daemon), and the tests need both.  So the package is only
# downloaded (`apt-get download`) and unpacked with `dpkg-deb -x`; its
# libraries not shared with rsyslog (libivykis0, libnet1, libwrap0) are
# ordinary packages that contrib/install-deps.sh installs.  The result:
#
#   build/syslog-ng/syslog-ng [syslog-ng options]
#
# a wrapper that runs the unpacked binary with its private libraries and
# modules (LD_LIBRARY_PATH, --module-path).  Give it its own -f config,
# -R persist file, -c control socket and -p pid file: the packaged
# defaults point at /etc and /var.
#
#   contrib/syslog-ng-local.sh [DEST]     (default: build/syslog-ng)
#
# Called by `contrib/install-deps.sh test` and by the tests' set-up; does
# nothing when DEST already holds a syslog-ng that runs.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$top/build/syslog-ng}

if [ -x "$dest/syslog-ng" ] && "$dest/syslog-ng" --version >/dev/null 2>&1; then
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt drops privileges to _apt for downloads: let it write here.
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
	chown _apt "$tmp"
fi
echo "syslog-ng-local: fetching syslog-ng-core into $dest"
if ! (cd "$tmp" && apt-get download -q syslog-ng-core >/dev/null); then
	# The package lists may be missing (fresh container) or stale.
	[ "$(id -u)" -eq 0 ] || {
		echo "syslog-ng-local: apt-get download failed; as root, run apt-get update" >&2
		exit 1
	}
	apt-get update -q >/dev/null
	(cd "$tmp" && apt-get download -q syslog-ng-core >/dev/null)
fi

# Keep only the program and its libraries and modules: the package's
# etc/ has folders named *.d, which the Makefile's dependency include
# (every *.d under build/) would try to read.
dpkg-deb -x "$tmp"/syslog-ng-core_*.deb "$tmp/root"
rm -rf "$dest"
mkdir -p "$dest/root/usr/sbin" "$dest/root/usr/lib"
mv "$tmp/root/usr/sbin/syslog-ng" "$dest/root/usr/sbin/"
mv "$tmp/root/usr/lib/syslog-ng" "$dest/root/usr/lib/"
modules=$(ls -d "$dest"/root/usr/lib/syslog-ng/[0-9]* | head -n 1)
[ -d "$modules" ] || {
	echo "syslog-ng-local: no module folder in the package" >&2
	exit 1
}
cat >"$dest/syslog-ng" <<EOF
#!/bin/sh
# Runs the syslog-ng unpacked by contrib/syslog-ng-local.sh.
LD_LIBRARY_PATH="$dest/root/usr/lib/syslog-ng\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
exec "$dest/root/usr/sbin/syslog-ng" --module-path="$modules" "\$@"
EOF
chmod 0755 "$dest/syslog-ng"

if ! "$dest/syslog-ng" --version >/dev/null 2>&1; then
	echo "syslog-ng-local: the unpacked syslog-ng does not run:" >&2
	"$dest/syslog-ng" --version >&2 || true
	echo "syslog-ng-local: are libivykis0 libnet1 libwrap0 installed?" \
		"(contrib/install-deps.sh test)" >&2
	exit 1
fi
echo "syslog-ng-local: $("$dest/syslog-ng" --version | head -n 1) in $dest"
