/*
 * fuzz_conf.c - libFuzzer target for the configuration parser.
 *
 * Each input is loaded as a config file through tfs_conf_load_file (the
 * bytes go to a memfd created once, read back through /proc/self/fd), then
 * split at its first '=' and given to tfs_conf_set as name and value, and
 * finally parsed as a value of every key.  Whatever the input, the calls
 * must return 0 or an error with a NUL-terminated message, values that
 * parse must be in range, and a failed load must leave the configuration
 * untouched.
 *
 *   clang -O1 -g -fsanitize=fuzzer,address,undefined -Iinclude \
 *	tests/fuzz/fuzz_conf.c src/conf.c src/util.c src/log.c \
 *	$(pkg-config --libs inih) -o /tmp/fuzz_conf
 *   /tmp/fuzz_conf tests/fuzz/corpus/fuzz_conf
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"
#include "err.h"

static int memfd = -1;
static char memfd_path[64];

static void check_err(int rc, const char *err, size_t len)
{
	if (rc != 0 && rc != TFS_EBADCONF && rc >= 0)
		abort();
	if (!memchr(err, '\0', len))
		abort();
}

static void fuzz_file(const uint8_t *data, size_t size)
{
	struct tfs_conf c, before;
	char err[256];
	int rc;

	if (memfd < 0) {
		memfd = memfd_create("fuzz_conf", MFD_CLOEXEC);
		if (memfd < 0)
			abort();
		snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d",
			 memfd);
	}
	if (ftruncate(memfd, 0) != 0 ||
	    pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	tfs_conf_init(&c);
	tfs_conf_copy(&before, &c);
	rc = tfs_conf_load_file(&c, memfd_path, err, sizeof(err));
	check_err(rc, err, sizeof(err));
	if (rc && memcmp(c.v, before.v, sizeof(c.v)))
		abort();
	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		const struct tfs_conf_desc *d = tfs_conf_desc(k);

		if (d->type != TFS_CONF_BOOL && d->type != TFS_CONF_ENUM &&
		    d->type != TFS_CONF_STRING &&
		    (c.v[k] < d->min || c.v[k] > d->max))
			abort();
	}
	tfs_conf_release(&before);
	tfs_conf_release(&c);
}

static void fuzz_set(const char *s, size_t size)
{
	struct tfs_conf c;
	char err[256], buf[64];
	const char *eq = memchr(s, '=', size);
	char *name;
	int64_t v, w;

	tfs_conf_init(&c);
	if (eq) {
		name = strndup(s, (size_t)(eq - s));
		if (!name)
			abort();
		check_err(tfs_conf_set(&c, name, eq + 1, err, sizeof(err)),
			  err, sizeof(err));
		free(name);
	}
	for (int k = 0; k < TFS_CONF__COUNT; k++) {
		int rc = tfs_conf_parse(k, s, &v, err, sizeof(err));

		check_err(rc, err, sizeof(err));
		if (rc)
			continue;
		/* What parses must format and parse back to itself. */
		tfs_conf_format(k, v, buf, sizeof(buf));
		if (tfs_conf_parse(k, buf, &w, err, sizeof(err)) || w != v)
			abort();
	}
	tfs_conf_release(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	fuzz_file(data, size);
	/* The string calls need a C string; stop at any NUL in the input. */
	s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_set(s, strlen(s));
	free(s);
	return 0;
}
