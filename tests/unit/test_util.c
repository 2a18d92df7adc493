/* Unit tests for the leaf helpers: CRC-32C, newline counting, buffers. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
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
	char dir[] = "/tmp/tfs-util-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
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
	rmdir(dir);
}

int main(void)
{
	test_crc();
	test_crc_lengths();
	test_newlines();
	test_buf();
	test_errors();
	test_sysio();
	return check_done();
}
