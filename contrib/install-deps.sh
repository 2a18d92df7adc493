#!/bin/sh
# Installs the Debian 12 packages topicfs needs to build, test, run and
# benchmark, and only those that are missing.  Called by `make run`,
# `make test`, `make check` and `make bench`; safe to run again.
#
#   contrib/install-deps.sh [build|test|bench]   (default: test)
#
# For test and bench it also unpacks a private syslog-ng under
# build/syslog-ng (contrib/syslog-ng-local.sh): Debian's syslog-ng-core
# conflicts with rsyslog, and the log-shipper tests run both.
set -eu

want=${1:-test}

build="gcc make pkg-config libfuse3-dev fuse3 libzstd-dev libjansson-dev
       libinih-dev libcurl4-openssl-dev libmicrohttpd-dev libssl-dev"
test="$build bats attr e2fsprogs util-linux procps psmisc python3 clang
      libclang-rt-14-dev man-db rsyslog logrotate systemd
      libivykis0 libnet1 libwrap0 jq etcd-server etcd-client curl iproute2
      iptables nginx wrk socat faketime qemu-user"
bench="$test redis-server redis-tools gnuplot-nox"

case $want in
build) pkgs=$build ;;
test) pkgs=$test ;;
bench) pkgs=$bench ;;
*) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=
for p in $pkgs; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages:$missing" >&2
		echo "install-deps: run as root, or: sudo apt-get install$missing" >&2
		exit 1
	fi
	echo "install-deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
fi

if [ "$want" != build ]; then
	"$(dirname "$0")/syslog-ng-local.sh"
fi
