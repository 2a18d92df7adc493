# topicfs — a plain GNU Makefile.
#
#   make            build build/topicfs, the perf tool and the test programs
#   make run        install missing packages, build, mount a node at $(MNT)
#   make stop       unmount it
#   make cluster    build, start a local etcd and a three-node cluster on
#                   127.0.0.1 under $(CLUSTER_DIR), print a tour
#   make cluster-stop   unmount its nodes and stop its etcd
#   make test       unit tests (also on an emulated CPU without SSE4.2),
#                   end-to-end tests (bats, real mounts)
#   make check      the same under ASan+UBSan in build-asan/, plus the fuzzer
#                   and the configuration-reference drift check
#   make tsan       unit and end-to-end tests under ThreadSanitizer, in
#                   build-tsan/ (run without address randomisation, see below)
#   make bench      side-by-side benchmarks (see docs/PERFORMANCE.md)
#   make install    PREFIX=/usr/local DESTDIR=  (make uninstall undoes it)
#   make lint       every src/*.c includes banned.h last (contrib/lint.sh)
#   make man        lint the man page docs/topicfs.8 (groff warnings fail)
#   make clean

PREFIX   ?= /usr/local
SBINDIR  ?= $(PREFIX)/sbin
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
DOCDIR   ?= $(PREFIX)/share/doc/topicfs
SYSCONFDIR ?= /etc
# systemd reads units from /usr/local/lib/systemd/system too; Debian's own
# packages use /lib/systemd/system.
UNITDIR  ?= $(PREFIX)/lib/systemd/system
DESTDIR  ?=

MNT      ?= /mnt/log
DATA     ?= /var/lib/topicfs
CLUSTER_DIR ?= /tmp/topicfs-cluster

B        ?= build
# make's built-in CC is cc: `CC ?= gcc` would never apply.  gcc unless the
# user chose a compiler (CC=clang on the command line or in the environment).
ifeq ($(origin CC),default)
CC       := gcc
endif
PKGS     := fuse3 libzstd jansson inih libcurl libmicrohttpd libcrypto
OPT      ?= -O2 -g
SAN      ?=
CFLAGS   ?=
CFLAGS   += $(OPT) $(SAN) -std=gnu11 -Wall -Wextra -Wshadow -Wno-unused-parameter \
            -D_GNU_SOURCE -pthread -Iinclude -MMD -MP
# No -msse4.2 or -mavx* here: the code must run on any x86-64.  Functions
# that use an instruction set say so with __attribute__((target(...))) and
# are called only after a run-time CPU check (src/crc32c.c, src/util.c).
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDFLAGS  += $(SAN) -pthread
LDLIBS   += $(PKG_LIBS) -lm

LIB_SRCS := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJS := $(LIB_SRCS:src/%.c=$(B)/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(B)/tests/%)

all: $(B)/topicfs $(B)/topicfs-perf $(UNIT_BINS) $(TOOL_BINS)

# Every object depends on $(B)/flags, which changes only when the compiler
# or its flags do: a new CC, OPT or SAN rebuilds the folder instead of
# mixing objects built two ways.
FLAGS_SIG = $(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS)
$(B)/flags: FORCE
	@mkdir -p $(@D)
	@echo '$(FLAGS_SIG)' | cmp -s - $@ || echo '$(FLAGS_SIG)' > $@

$(B)/obj/%.o: src/%.c $(B)/flags
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

$(B)/obj/tests/%.o: tests/unit/%.c $(B)/flags
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests/unit -c -o $@ $<

$(B)/obj/tools/%.o: tests/tools/%.c $(B)/flags
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/obj/contrib/%.o: contrib/perf/%.c $(B)/flags
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/libtopicfs.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/topicfs: $(B)/obj/main.o $(B)/libtopicfs.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/topicfs-perf: $(B)/obj/contrib/topicfs-perf.o
	$(CC) $(LDFLAGS) -o $@ $^ -lm

$(B)/tests/test_%: $(B)/obj/tests/test_%.o $(B)/libtopicfs.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: $(B)/obj/tools/%.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ -lm

# --- set-up -----------------------------------------------------------------

deps:
	@contrib/install-deps.sh test

deps-build:
	@contrib/install-deps.sh build

run: deps-build
	@$(MAKE) --no-print-directory $(B)/topicfs
	@contrib/run.sh start $(B)/topicfs $(DATA) $(MNT)

stop:
	@contrib/run.sh stop $(B)/topicfs $(DATA) $(MNT)

deps-cluster:
	@contrib/install-deps.sh cluster

cluster: deps-cluster
	@$(MAKE) --no-print-directory $(B)/topicfs
	@CLUSTER_DIR=$(CLUSTER_DIR) TOPICFS=$(abspath $(B)/topicfs) contrib/cluster.sh start

cluster-stop:
	@CLUSTER_DIR=$(CLUSTER_DIR) contrib/cluster.sh stop

# --- tests ------------------------------------------------------------------

unit: all
	@tests/unit/run $(B)/tests

# The unit tests again on an emulated Core 2 (no SSE4.1/4.2, POPCNT, AVX):
# an instruction used without a CPU check dies there with SIGILL, and the
# portable CRC-32C and newline paths are the ones that run.
OLDCPU ?= Conroe
unit-oldcpu: all
	@command -v qemu-x86_64 >/dev/null || \
		{ echo "unit-oldcpu: qemu-x86_64 is missing: run contrib/install-deps.sh test" >&2; exit 1; }
	@echo "unit-oldcpu: under qemu-x86_64 -cpu $(OLDCPU)"
	@UNIT_WRAP="qemu-x86_64 -cpu $(OLDCPU)" tests/unit/run $(B)/tests

e2e: all
	@TOPICFS_BUILD=$(abspath $(B)) tests/e2e/run

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory unit-oldcpu
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory docs-check
	@$(MAKE) --no-print-directory e2e

# The fault-injection suite alone, for longer (docs/RELIABILITY.md):
# `make chaos CHAOS_DURATION=600 CHAOS_SEED=N`.  Results (JSON, Markdown
# and the fault log of the run) go to bench/chaos/.  `make test` runs the
# same file for about two minutes.
CHAOS_DURATION ?= 600
CHAOS_RESULTS ?= $(abspath bench/chaos)
chaos: deps
	@$(MAKE) --no-print-directory all
	@CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_RESULTS=$(CHAOS_RESULTS) \
		$(if $(CHAOS_SEED),CHAOS_SEED=$(CHAOS_SEED)) \
		TOPICFS_BUILD=$(abspath $(B)) tests/e2e/run \
		tests/e2e/chaos-checker.bats tests/e2e/chaos.bats

# Every src/*.c includes banned.h last, and banned.h bans what it lists.
lint:
	@CC="$(CC)" contrib/lint.sh

# The configuration reference is generated from the table in src/conf.c;
# this fails when docs/CONFIGURATION.md or etc/topicfs.conf drifted.
docs-check: $(B)/topicfs
	@contrib/docs-check.sh $(B)/topicfs
	@contrib/include-check.sh

docs: $(B)/topicfs
	$(B)/topicfs --config-doc > docs/CONFIGURATION.md

ASAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
check: deps
	@$(MAKE) --no-print-directory B=build-asan OPT="-O1 -g" SAN="$(ASAN)" all
	@$(MAKE) --no-print-directory B=build-asan OPT="-O1 -g" SAN="$(ASAN)" unit lint docs-check
	@$(MAKE) --no-print-directory B=build-asan OPT="-O1 -g" SAN="$(ASAN)" e2e
	@$(MAKE) --no-print-directory fuzz

# ThreadSanitizer: the unit and end-to-end tests built with
# -fsanitize=thread in build-tsan/ (tests/e2e/helper.bash fails a test
# whose daemon log holds a "WARNING: ThreadSanitizer" report; a unit test
# with one exits non-zero).  TSan maps its shadow memory at fixed places:
# on kernels whose vm.mmap_rnd_bits is above 28 it dies with "FATAL:
# ThreadSanitizer: unexpected memory mapping", so the tests run under
# `setarch $(uname -m) -R` (no address randomisation, inherited by every
# process they start) and the sysctl can stay as it is.
TSAN := -fsanitize=thread
NOASLR = setarch $$(uname -m) -R
tsan: deps
	@$(MAKE) --no-print-directory B=build-tsan OPT="-O1 -g" SAN="$(TSAN)" all
	@$(NOASLR) tests/unit/run build-tsan/tests
	@$(NOASLR) $(MAKE) --no-print-directory B=build-tsan OPT="-O1 -g" SAN="$(TSAN)" docs-check
	@TOPICFS_BUILD=$(abspath build-tsan) $(NOASLR) tests/e2e/run

# libFuzzer targets (clang), run for a short time each.
FUZZ_SECONDS ?= 30
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
fuzz:
	@$(MAKE) --no-print-directory B=build-fuzz CC=clang OPT="-O1 -g" \
		SAN="-fsanitize=fuzzer-no-link,address,undefined" $(B:build=build-fuzz)/libtopicfs.a
	@set -e; for f in $(FUZZ_SRCS); do \
		n=$$(basename $$f .c); \
		clang -O1 -g -fsanitize=fuzzer,address,undefined -Iinclude \
			-o build-fuzz/$$n $$f build-fuzz/libtopicfs.a $(PKG_LIBS) -lm; \
		mkdir -p build-fuzz/corpus-$$n; \
		cp tests/fuzz/corpus/$$n/* build-fuzz/corpus-$$n/ 2>/dev/null || true; \
		echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
		build-fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=build-fuzz/ build-fuzz/corpus-$$n 2>build-fuzz/$$n.log \
			|| { tail -40 build-fuzz/$$n.log; exit 1; }; \
		grep -E 'stat::number_of_executed_units' build-fuzz/$$n.log; \
	done

bench:
	@contrib/install-deps.sh bench
	@$(MAKE) --no-print-directory all
	@contrib/bench/run.sh

# --- install ----------------------------------------------------------------

# What goes where (PREFIX=/usr/local unless given; DESTDIR for staging):
#   $(SBINDIR)/topicfs              found there by mount.fuse3 (see topicfs(8))
#   $(BINDIR)/topicfs-perf          load generator
#   $(SYSCONFDIR)/topicfs/topicfs.conf   the example, as a conffile: never
#                                   overwritten once modified; the new one
#                                   then goes next to it as topicfs.conf.dist
#   $(MANDIR)/man8/topicfs.8.gz
#   $(UNITDIR)/topicfs.service      ExecStart follows SBINDIR and SYSCONFDIR
#   $(DOCDIR)/                      README, docs/*.md, examples/ (the unit,
#                                   a .mount unit, the config)
# uninstall removes all of it but a modified topicfs.conf (as dpkg keeps a
# conffile on remove), and then the directories that are topicfs's own.
CONF      := $(DESTDIR)$(SYSCONFDIR)/topicfs/topicfs.conf
DOCS      := $(wildcard README.md) $(wildcard docs/*.md)
EXAMPLES  := contrib/topicfs.service contrib/mnt-log.mount etc/topicfs.conf
SED_PATHS := -e 's|/usr/local/sbin/|$(SBINDIR)/|g' \
	     -e 's|/etc/topicfs/|$(SYSCONFDIR)/topicfs/|g' \
	     -e 's|/usr/local/share/doc/topicfs|$(DOCDIR)|g'

install: $(B)/topicfs $(B)/topicfs-perf
	install -D -m 0755 $(B)/topicfs $(DESTDIR)$(SBINDIR)/topicfs
	install -D -m 0755 $(B)/topicfs-perf $(DESTDIR)$(BINDIR)/topicfs-perf
	@if [ ! -e $(CONF) ]; then \
		echo "install -D -m 0644 etc/topicfs.conf $(CONF)"; \
		install -D -m 0644 etc/topicfs.conf $(CONF); \
	elif cmp -s etc/topicfs.conf $(CONF); then \
		echo "$(CONF) is up to date"; \
	else \
		install -m 0644 etc/topicfs.conf $(CONF).dist; \
		echo "kept the modified $(CONF); the new example is $(CONF).dist"; \
	fi
	install -d $(DESTDIR)$(MANDIR)/man8
	sed $(SED_PATHS) docs/topicfs.8 | gzip -9n > $(DESTDIR)$(MANDIR)/man8/topicfs.8.gz
	chmod 0644 $(DESTDIR)$(MANDIR)/man8/topicfs.8.gz
	install -d $(DESTDIR)$(UNITDIR)
	sed $(SED_PATHS) contrib/topicfs.service > $(DESTDIR)$(UNITDIR)/topicfs.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/topicfs.service
	install -d $(DESTDIR)$(DOCDIR)/examples
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	for f in $(EXAMPLES); do \
		sed $(SED_PATHS) $$f > $(DESTDIR)$(DOCDIR)/examples/$${f##*/} && \
		chmod 0644 $(DESTDIR)$(DOCDIR)/examples/$${f##*/} || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/topicfs $(DESTDIR)$(BINDIR)/topicfs-perf
	rm -f $(DESTDIR)$(MANDIR)/man8/topicfs.8.gz
	rm -f $(DESTDIR)$(UNITDIR)/topicfs.service
	rm -f $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS)))
	rm -f $(addprefix $(DESTDIR)$(DOCDIR)/examples/,$(notdir $(EXAMPLES)))
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR)
	rm -f $(CONF).dist
	@if [ -e $(CONF) ] && ! cmp -s etc/topicfs.conf $(CONF); then \
		echo "kept $(CONF): it was modified"; \
	else \
		echo "rm -f $(CONF)"; rm -f $(CONF); \
		rmdir $(DESTDIR)$(SYSCONFDIR)/topicfs 2>/dev/null || true; \
	fi

# Lints the man page: any groff warning fails.
man:
	@out=$$(MANWIDTH=80 man --warnings -l docs/topicfs.8 2>&1 >/dev/null); \
	if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; \
	echo "docs/topicfs.8: no warnings"

clean:
	rm -rf build build-asan build-fuzz build-tsan

.PHONY: FORCE all deps deps-build deps-cluster run stop cluster cluster-stop unit unit-oldcpu e2e chaos test lint docs-check docs check tsan fuzz \
	bench install uninstall man clean

-include $(shell find $(B) -name '*.d' -type f 2>/dev/null)
