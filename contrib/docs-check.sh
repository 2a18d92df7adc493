#!/bin/sh
# docs-check.sh TOPICFS_BIN - fails when the configuration docs drifted from
# the table in src/conf.c:
#
#   * docs/CONFIGURATION.md must equal `TOPICFS_BIN --config-doc`;
#   * every key (a "### name" heading of that output) must appear in
#     etc/topicfs.conf as a "key = value" line, commented out or not.
#
# Run from anywhere; paths are relative to the repository root.  Called by
# `make docs-check` (part of `make test` and `make check`).
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 TOPICFS_BIN" >&2
	exit 2
fi
bin=$1
root=$(cd "$(dirname "$0")/.." && pwd)
doc=$root/docs/CONFIGURATION.md
conf=$root/etc/topicfs.conf

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT INT TERM

if ! "$bin" --config-doc >"$tmp"; then
	echo "docs-check: '$bin --config-doc' failed" >&2
	exit 1
fi
if [ ! -s "$tmp" ]; then
	echo "docs-check: '$bin --config-doc' printed nothing" >&2
	exit 1
fi

fail=0
if [ ! -f "$doc" ]; then
	echo "docs-check: docs/CONFIGURATION.md is missing; run 'make docs'" >&2
	fail=1
elif ! diff -u "$doc" "$tmp" >&2; then
	echo "docs-check: docs/CONFIGURATION.md differs from" \
		"'$bin --config-doc' (diff above); run 'make docs' and" \
		"commit the result" >&2
	fail=1
fi

keys=$(sed -n 's/^### \([A-Za-z0-9._-]*\)$/\1/p' "$tmp")
if [ -z "$keys" ]; then
	echo "docs-check: no '### key' headings in '$bin --config-doc'" >&2
	exit 1
fi
for k in $keys; do
	re=$(printf '%s' "$k" | sed 's/\./\\./g')
	if ! grep -Eq "^[#;]?[[:space:]]*$re[[:space:]]*=" "$conf"; then
		echo "docs-check: key '$k' is missing from etc/topicfs.conf;" \
			"add a commented '# $k = default' block" >&2
		fail=1
	fi
done

[ $fail -eq 0 ] && echo "docs-check: docs/CONFIGURATION.md and etc/topicfs.conf match the configuration table"
exit $fail
