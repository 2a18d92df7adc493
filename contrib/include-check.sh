#!/bin/sh
# Checks that the modules' include graph has no cycle.
#
# A module is a header include/M.h and the files that implement it:
# src/M.c and src/M_*.c (src/fsops_io.c and src/fsops_int.h belong to
# fsops).  An edge M -> N means that a file of M includes "N.h".  The
# layers (docs/DESIGN.md) must form a DAG: tsort fails on a cycle and
# names it.  Prints the layers from the bottom when all is well.
set -eu
cd "$(dirname "$0")/.."

module_of() {
	b=$(basename "$1")
	b=${b%.c}
	b=${b%.h}
	# Files of a module beyond its .c: fsops_ns.c, partition_int.h, ...
	for m in $(ls include/*.h | sed 's|include/||; s|\.h$||'); do
		case $b in
		"$m"_*) echo "$m"; return ;;
		esac
	done
	echo "$b"
}

edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
for f in include/*.h src/*.c src/*.h; do
	[ -e "$f" ] || continue
	from=$(module_of "$f")
	echo "$from $from" >>"$edges"
	for inc in $(sed -n 's/^#include "\([^"]*\)\.h"/\1/p' "$f"); do
		to=$(module_of "$inc")
		[ "$to" = "$from" ] || echo "$from $to" >>"$edges"
	done
done
# tsort lists a node before those it points to; reverse for bottom-up.
if ! order=$(tsort "$edges" 2>&1); then
	echo "include-check: the module include graph has a cycle:" >&2
	echo "$order" >&2
	exit 1
fi
if echo "$order" | grep -q 'loop'; then
	echo "include-check: the module include graph has a cycle:" >&2
	echo "$order" >&2
	exit 1
fi
echo "include-check: no cycle; modules from the bottom up:"
echo "$order" | tac | tr '\n' ' '
echo
