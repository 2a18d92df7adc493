/*
 * Unit tests for the leaf helpers: CRC-32C (every implementation the CPU
 * has against the portable table, and the table forced through the
 * environment), newline counting, buffers, errors, the syscall table.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "testlib.h"
#include "crc32c.h"
#include "err.h"
#include "sysio.h"
#include "util.h"

/* Bit-at-a-time reference, independent of the module's table and SSE. */
static uint32_t crc_ref(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
	}
	return ~c;
}

static void test_crc(void)
{
	TEST("crc32c known vectors");
	CHECK_EQ(tfs_crc32c(0, "123456789", 9), 0xe3069283u);
	CHECK_EQ(tfs_crc32c(0, "", 0), 0);
	unsigned char zeros[32] = { 0 };
	CHECK_EQ(tfs_crc32c(0, zeros, 32), 0x8a9136aau);

	TEST("crc32c matches the reference at every length and split");
	static unsigned char buf[3 * 4096 * 2 + 77];
	uint32_t seed = 12345;
	for (size_t i = 0; i < sizeof(buf); i++) {
		seed = seed * 1103515245 + 12345;
		buf[i] = (unsigned char)(seed >> 16);
	}
	size_t lens[] = { 1, 7, 8, 9, 63, 4095, 4096, 12287, 12288, 12289,
			  20000, sizeof(buf) };
	for (size_t i = 0; i < TFS_ARRAY_SIZE(lens); i++) {
		uint32_t want = crc_ref(buf, lens[i]);
		CHECKF(tfs_crc32c(0, buf, lens[i]) == want, "len %zu", lens[i]);
		size_t half = lens[i] / 3;
		uint32_t c = tfs_crc32c(0, buf, half);
		c = tfs_crc32c(c, buf + half, lens[i] - half);
		CHECKF(c == want, "split len %zu", lens[i]);
	}
}

static void test_crc_lengths(void)
{
	TEST("crc32c: every length from 0 to 1300, any starting crc");
	static unsigned char buf[1400];
	uint32_t seed = 99;
	int bad = 0;

	for (size_t i = 0; i < sizeof(buf); i++) {
		seed = seed * 1103515245 + 12345;
		buf[i] = (unsigned char)(seed >> 16);
	}
	for (size_t n = 0; n <= 1300; n++) {
		uint32_t want = crc_ref(buf + 3, n);
		bad += tfs_crc32c(0, buf + 3, n) != want;
		/* Continuing from a prefix's crc exercises the register being
		 * folded into the first block. */
		size_t cut = n / 7;
		uint32_t c = tfs_crc32c(0, buf + 3, cut);
		bad += tfs_crc32c(c, buf + 3 + cut, n - cut) != want;
	}
	CHECK_EQ(bad, 0);

	TEST("crc32c: a 1 MiB buffer at odd alignment");
	size_t big = (1 << 20) + 77;
	unsigned char *b = tfs_malloc(big + 1);
	for (size_t i = 0; i <= big; i++)
		b[i] = (unsigned char)(i * 2654435761u >> 13);
	CHECK_EQ(tfs_crc32c(0, b + 1, big), crc_ref(b + 1, big));
	free(b);
}

/* xorshift64: reproducible random bytes, lengths and seeds. */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static const char *const impl_names[] = { "table", "sse4.2", "vpclmul" };

static bool cpu_has(enum tfs_crc32c_impl impl)
{
	__builtin_cpu_init();
	switch (impl) {
	case TFS_CRC32C_TABLE:
		return true;
	case TFS_CRC32C_SSE42:
		return __builtin_cpu_supports("sse4.2");
	case TFS_CRC32C_VPCLMUL:
		return __builtin_cpu_supports("sse4.2") &&
		       __builtin_cpu_supports("pclmul") &&
		       __builtin_cpu_supports("avx512f") &&
		       __builtin_cpu_supports("vpclmulqdq");
	}
	return false;
}

/* impl against the table over buf + off for n bytes from a random crc,
 * whole and split in two at a random point; returns the mismatches. */
static int compare_impl(enum tfs_crc32c_impl impl, const unsigned char *buf,
			size_t off, size_t n)
{
	uint32_t start = (uint32_t)rnd(), want, got, part;
	size_t cut = n ? (size_t)(rnd() % (n + 1)) : 0;
	int bad = 0;

	if (tfs_crc32c_with(TFS_CRC32C_TABLE, start, buf + off, n, &want) ||
	    tfs_crc32c_with(impl, start, buf + off, n, &got))
		return 1;
	bad += got != want;
	if (tfs_crc32c_with(impl, start, buf + off, cut, &part) ||
	    tfs_crc32c_with(impl, part, buf + off + cut, n - cut, &got))
		return 1;
	bad += got != want;
	return bad;
}

static void test_crc_impls(void)
{
	size_t cap = (4u << 20) + 64;
	unsigned char *buf = tfs_malloc(cap);
	uint32_t c;

	for (size_t i = 0; i < cap; i += 8) {
		uint64_t r = rnd();
		memcpy(buf + i, &r, 8);
	}

	TEST("crc32c: the table against the bit-at-a-time reference");
	int bad = 0;
	for (size_t n = 0; n <= 4096; n += n < 64 ? 1 : 97) {
		CHECK_EQ(tfs_crc32c_with(TFS_CRC32C_TABLE, 0, buf + 5, n, &c), 0);
		bad += c != crc_ref(buf + 5, n);
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(tfs_crc32c_with(TFS_CRC32C_TABLE, 0, "123456789", 9, &c), 0);
	CHECK_EQ(c, 0xe3069283u);
	CHECK_EQ(tfs_crc32c_with((enum tfs_crc32c_impl)7, 0, "x", 1, &c),
		 -EINVAL);

	TEST("crc32c: tfs_crc32c() uses the best path the CPU has");
	enum tfs_crc32c_impl best = cpu_has(TFS_CRC32C_VPCLMUL)
					    ? TFS_CRC32C_VPCLMUL
				    : cpu_has(TFS_CRC32C_SSE42)
					    ? TFS_CRC32C_SSE42
					    : TFS_CRC32C_TABLE;
	const char *forced = getenv("TFS_CRC32C");
	CHECKF(forced || tfs_crc32c_impl() == best, "uses %s, CPU has %s",
	       impl_names[tfs_crc32c_impl()], impl_names[best]);

	for (int impl = TFS_CRC32C_SSE42; impl <= TFS_CRC32C_VPCLMUL; impl++) {
		char title[96];

		snprintf(title, sizeof(title),
			 "crc32c: %s equals the table, random buffers",
			 impl_names[impl]);
		TEST(title);
		if (!cpu_has(impl)) {
			/* Said, not skipped silently: the CPU decides. */
			fprintf(stderr, "# this CPU has no %s: only its "
				"refusal is checked\n", impl_names[impl]);
			CHECK_EQ(tfs_crc32c_with(impl, 0, buf, 1, &c),
				 -ENOTSUP);
			continue;
		}
		bad = 0;
		for (size_t n = 0; n <= 4096; n++)
			bad += compare_impl(impl, buf, rnd() % 64, n);
		static const size_t big[] = {
			8191, 12287, 12288, 12289, 3 * 4096 * 2 + 511,
			65536 + 3, (1 << 20) + 77, 4u << 20,
		};
		for (size_t i = 0; i < TFS_ARRAY_SIZE(big); i++)
			bad += compare_impl(impl, buf, rnd() % 64, big[i]);
		for (int i = 0; i < 200; i++)
			bad += compare_impl(impl, buf, rnd() % 64,
					    rnd() % (1 << 20));
		CHECK_EQ(bad, 0);
	}
	free(buf);
}

/* The child of test_crc_forced(): prints the path in use and two crcs. */
static int crc_child(void)
{
	static unsigned char big[100000];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 2654435761u >> 13);
	printf("%d %08x %08x\n", (int)tfs_crc32c_impl(),
	       tfs_crc32c(0, "123456789", 9), tfs_crc32c(0, big, sizeof(big)));
	return 0;
}

static void test_crc_forced(void)
{
	TEST("crc32c: TFS_CRC32C=table forces the table in a new process");
	static unsigned char big[100000];
	char self[PATH_MAX], cmd[PATH_MAX + 32], line[64] = "";
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int impl = -1;
	unsigned a = 0, b = 0;

	CHECK(len > 0);
	if (len <= 0)
		return;
	self[len] = '\0';
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 2654435761u >> 13);
	snprintf(cmd, sizeof(cmd), "'%s' crc-child", self);
	setenv("TFS_CRC32C", "table", 1);
	FILE *f = popen(cmd, "r");
	unsetenv("TFS_CRC32C");
	CHECK(f != NULL);
	if (!f)
		return;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	CHECK_EQ(pclose(f), 0);
	CHECKF(sscanf(line, "%d %x %x", &impl, &a, &b) == 3, "child said [%s]",
	       line);
	CHECK_EQ(impl, TFS_CRC32C_TABLE);
	CHECK_EQ(a, 0xe3069283u);
	CHECK_EQ(b, crc_ref(big, sizeof(big)));
}

static void test_newlines(void)
{
	TEST("count newlines");
	char s[100];
	memset(s, 'a', sizeof(s));
	CHECK_EQ(tfs_count_newlines(s, sizeof(s)), 0);
	s[0] = s[15] = s[16] = s[31] = s[99] = '\n';
	CHECK_EQ(tfs_count_newlines(s, sizeof(s)), 5);
	CHECK_EQ(tfs_count_newlines(s + 1, 15), 1);
	CHECK_EQ(tfs_count_newlines(s, 0), 0);

	TEST("count newlines: every length and alignment against a plain loop");
	static char big[4096 + 64];
	uint32_t seed = 7;
	for (size_t i = 0; i < sizeof(big); i++) {
		seed = seed * 1103515245 + 12345;
		big[i] = (seed >> 16) % 5 == 0 ? '\n' : (char)(seed >> 8);
	}
	int bad = 0;
	for (size_t off = 0; off < 64; off += 7) {
		for (size_t n = 0; n + off <= sizeof(big); n += n < 200 ? 1 : 61) {
			size_t want = 0;
			for (size_t i = 0; i < n; i++)
				want += big[off + i] == '\n';
			bad += tfs_count_newlines(big + off, n) != want;
		}
	}
	CHECK_EQ(bad, 0);
}

static void test_buf(void)
{
	TEST("buffers");
	struct tfs_buf b = TFS_BUF_INIT;
	tfs_buf_addf(&b, "%s-%d", "abc", 42);
	CHECK(!strcmp(b.data, "abc-42"));
	for (int i = 0; i < 1000; i++)
		tfs_buf_add(&b, "xy", 2);
	CHECK_EQ(b.len, 6 + 2000);
	tfs_buf_consume(&b, 6);
	CHECK_EQ(b.len, 2000);
	CHECK(b.data[0] == 'x' && b.data[2000] == '\0');
	size_t n;
	char *p = tfs_buf_detach(&b, &n);
	CHECK_EQ(n, 2000);
	CHECK(b.data == NULL && b.len == 0);
	free(p);
	tfs_buf_release(&b);
}

static void test_errors(void)
{
	TEST("error codes");
	CHECK(!strcmp(tfs_strerror(TFS_ECORRUPT), "corrupt data on disk"));
	CHECK(!strcmp(tfs_strerror(-ENOENT), strerror(ENOENT)));
	CHECK_EQ(tfs_err_to_errno(TFS_EBELOWSTART), ENODATA);
	CHECK_EQ(tfs_err_to_errno(-ENOSPC), ENOSPC);
}

static void test_sysio(void)
{
	TEST("syscall table: nth fault, sticky, atomic write");
	char dir[64];
	int rc = tl_setup("util", dir, sizeof(dir));
	CHECK_EQ(rc, 0);
	if (rc)
		return;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	CHECK(dfd >= 0);

	CHECK_EQ(tfs_sys_write_atomic(dfd, "meta", "one", 3), 0);
	tfs_sys_fault(TFS_SYS_RENAMEAT, 1, EIO, 0);
	CHECK_EQ(tfs_sys_write_atomic(dfd, "meta", "two", 3), -EIO);
	CHECK(tfs_sys_fault_fired());
	char *s = NULL;
	CHECK_EQ(tfs_sys_read_file(dfd, "meta", 100, &s, NULL), 0);
	CHECK(s && !strcmp(s, "one"));
	free(s);
	CHECK(faccessat(dfd, "meta.tmp", F_OK, 0) < 0);

	tfs_sys_fault_clear();
	tfs_sys_fault(TFS_SYS_PWRITE, 2, ENOSPC, TFS_FAULT_STICKY);
	int fd = tfs_sys_openat(dfd, "f", O_RDWR | O_CREAT, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(tfs_sys_pwrite(fd, "a", 1, 0), 1);
	CHECK_EQ(tfs_sys_pwrite(fd, "b", 1, 1), -ENOSPC);
	CHECK_EQ(tfs_sys_fsync(fd), -EIO);	/* sticky: everything fails */
	tfs_sys_fault_clear();
	CHECK_EQ(tfs_sys_fsync(fd), 0);
	tfs_sys_close(fd);
	unlinkat(dfd, "f", 0);
	unlinkat(dfd, "meta", 0);
	close(dfd);
	tl_cleanup(dir);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "crc-child"))
		return crc_child();
	test_crc();
	test_crc_lengths();
	test_crc_impls();
	test_crc_forced();
	test_newlines();
	test_buf();
	test_errors();
	test_sysio();
	return check_done();
}
