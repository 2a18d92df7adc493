#!/bin/sh
# lint.sh - source checks the compiler does not make by itself.  Called by
# `make lint` (part of `make test` and `make check`); CC picks the compiler
# (default gcc).  Run from anywhere; paths are relative to the repository.
#
#   1. Every src/*.c (any file there, new ones included) has
#      #include "banned.h" as its last #include, after every system
#      header, so the calls include/banned.h lists cannot compile.
#   2. include/banned.h works: a call to each name it bans fails to
#      compile, with that name in the error.  (That the sources compile
#      with it is the build's job.)
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cc=${CC:-gcc}

# Files that do not include banned.h yet, each with the reason.  An entry
# must go when its file gains the include: the check fails on a stale one.
pending=""

fail=0
checked=0
late=
for f in src/*.c; do
	[ -e "$f" ] || { echo "lint: no src/*.c found" >&2; exit 1; }
	last=$(grep -E '^[[:space:]]*#[[:space:]]*include' "$f" | tail -1 |
		tr -d ' \t')
	is_pending=no
	for p in $pending; do
		[ "$p" = "$f" ] && is_pending=yes
	done
	if [ "$last" = '#include"banned.h"' ]; then
		checked=$((checked + 1))
		if [ $is_pending = yes ]; then
			echo "lint: $f includes banned.h now: remove it from" \
				"the pending list in contrib/lint.sh" >&2
			fail=1
		fi
	elif [ $is_pending = yes ]; then
		late="$late ${f#src/}"
	elif grep -q '^[[:space:]]*#[[:space:]]*include[[:space:]]*"banned.h"' "$f"; then
		echo "lint: $f: #include \"banned.h\" must be the last" \
			"#include (after all system headers)" >&2
		fail=1
	else
		echo "lint: $f does not include banned.h: add" \
			"#include \"banned.h\" as its last #include" >&2
		fail=1
	fi
done
for p in $pending; do
	[ -e "$p" ] || {
		echo "lint: $p is in the pending list but does not exist" >&2
		fail=1
	}
done
[ -z "$late" ] || echo "lint: not including banned.h yet (pending):$late"

# 2. banned.h bans what it lists.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
# Every name banned.h #undefs, and at least these whatever it says.
required="strcpy strcat strncpy strncat sprintf vsprintf gets strtok gmtime
	  localtime ctime asctime"
names=$( (sed -n 's/^#undef \([a-z_]*\)$/\1/p' include/banned.h
	  printf '%s\n' $required) | sort -u)
bad=0
for n in $names; do
	printf '#include <stdio.h>\n#include <string.h>\n#include "banned.h"\nvoid f(void *a, void *b) { (void)%s(a, b); }\n' \
		"$n" >"$tmp/$n.c"
	if $cc -std=gnu11 -D_GNU_SOURCE -Iinclude -c -o "$tmp/$n.o" \
		"$tmp/$n.c" 2>"$tmp/$n.err"; then
		echo "lint: a call to $n compiled despite banned.h" >&2
		bad=1
	elif ! grep -q "sorry_${n}_is_a_banned_function" "$tmp/$n.err"; then
		echo "lint: a call to $n failed, but not because of banned.h:" >&2
		cat "$tmp/$n.err" >&2
		bad=1
	fi
done
[ $bad -eq 0 ] || fail=1

if [ $fail -eq 0 ]; then
	echo "lint: $checked src/*.c include banned.h last;" \
		"$(echo "$names" | wc -w) calls banned"
fi
exit $fail
