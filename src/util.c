/*
 * util.c - allocation, clocks, byte buffers and the error-code table.
 *
 * Leaf module: depends on libc only, so every other module and every test
 * can use it.
 */
#include <errno.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "util.h"
#include "banned.h"

static void __attribute__((noreturn)) oom(size_t n)
{
	fprintf(stderr, "topicfs: out of memory allocating %zu bytes\n", n);
	abort();
}

void *tfs_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

void *tfs_calloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (!p)
		oom(nmemb * size);
	return p;
}

void *tfs_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom(n);
	return q;
}

char *tfs_strdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		oom(strlen(s) + 1);
	return p;
}

char *tfs_asprintf(const char *fmt, ...)
{
	struct tfs_buf b = TFS_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	tfs_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	return tfs_buf_detach(&b, NULL);
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t tfs_now_ms(void)
{
	return clock_ns(CLOCK_REALTIME) / 1000000;
}

int64_t tfs_mono_ms(void)
{
	return clock_ns(CLOCK_MONOTONIC) / 1000000;
}

int64_t tfs_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

int64_t tfs_boot_ms(void)
{
	return clock_ns(CLOCK_BOOTTIME) / 1000000;
}

void tfs_buf_grow(struct tfs_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;

	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	b->data = tfs_realloc(b->data, cap);
	b->cap = cap;
}

void tfs_buf_add(struct tfs_buf *b, const void *p, size_t n)
{
	tfs_buf_grow(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void tfs_buf_vaddf(struct tfs_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	tfs_buf_grow(b, 64);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		tfs_buf_grow(b, n);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	}
	b->len += n;
}

void tfs_buf_addf(struct tfs_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tfs_buf_vaddf(b, fmt, ap);
	va_end(ap);
}

void tfs_buf_consume(struct tfs_buf *b, size_t n)
{
	if (n >= b->len) {
		tfs_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void tfs_buf_reset(struct tfs_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void tfs_buf_release(struct tfs_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *tfs_buf_detach(struct tfs_buf *b, size_t *len)
{
	char *p;

	tfs_buf_grow(b, 0);
	p = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

/*
 * Newlines are counted on every append (record offsets need them), so this
 * is on the write path: a compare and a popcount of the byte mask, 64
 * bytes per step with AVX2 when the CPU has it, 16 with SSE2 (part of
 * x86-64) otherwise.  The CPU is asked once, under pthread_once: FUSE
 * threads count newlines in parallel from the first write on.
 */
static bool have_avx2;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_init(void)
{
	__builtin_cpu_init();
	have_avx2 = __builtin_cpu_supports("avx2") &&
		    __builtin_cpu_supports("popcnt");
}

__attribute__((target("avx2,popcnt")))
static size_t newlines_avx2(const unsigned char *s, size_t n, size_t *done)
{
	const __m256i nl = _mm256_set1_epi8('\n');
	size_t count = 0, i = 0;

	for (; i + 64 <= n; i += 64) {
		__m256i a = _mm256_loadu_si256((const __m256i *)(s + i));
		__m256i b = _mm256_loadu_si256((const __m256i *)(s + i + 32));
		uint64_t m = (uint32_t)_mm256_movemask_epi8(
				     _mm256_cmpeq_epi8(a, nl)) |
			     (uint64_t)(uint32_t)_mm256_movemask_epi8(
				     _mm256_cmpeq_epi8(b, nl))
				     << 32;
		count += (size_t)__builtin_popcountll(m);
	}
	*done = i;
	return count;
}

static size_t newlines_sse2(const unsigned char *s, size_t n, size_t *done)
{
	const __m128i nl = _mm_set1_epi8('\n');
	size_t count = 0, i = 0;

	for (; i + 16 <= n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(s + i));
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl));
		count += (size_t)__builtin_popcount(m);
	}
	*done = i;
	return count;
}

size_t tfs_count_newlines(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t count, i;

	pthread_once(&cpu_once, cpu_init);
	count = have_avx2 ? newlines_avx2(s, n, &i) : newlines_sse2(s, n, &i);
	for (; i < n; i++)
		count += s[i] == '\n';
	return count;
}

static const char *const project_errors[] = {
	[TFS_ECORRUPT - TFS_E_BASE] = "corrupt data on disk",
	[TFS_EBELOWSTART - TFS_E_BASE] = "offset below the retained start",
	[TFS_ENOTBOUNDARY - TFS_E_BASE] = "offset is not a batch boundary",
	[TFS_ESHUTDOWN - TFS_E_BASE] = "store is shutting down",
	[TFS_EDELETED - TFS_E_BASE] = "topic was deleted",
	[TFS_ESTALEEPOCH - TFS_E_BASE] = "stale leader epoch",
	[TFS_ENOTLEADER - TFS_E_BASE] = "not the partition leader",
	[TFS_EBADCONF - TFS_E_BASE] = "invalid configuration value",
	[TFS_EUNAVAIL - TFS_E_BASE] = "peer or etcd unavailable",
	[TFS_EUNKNOWN - TFS_E_BASE] = "outcome unknown (request timed out)",
	[TFS_EAUTH - TFS_E_BASE] = "peer authentication failed",
	[TFS_ESEQUENCE - TFS_E_BASE] = "producer sequence out of order",
	[TFS_ENOISR - TFS_E_BASE] = "not enough in-sync replicas",
	[TFS_EPROTO - TFS_E_BASE] = "malformed peer or etcd message",
};

const char *tfs_strerror(int code)
{
	if (code == 0)
		return "success";
	if (code >= TFS_E_BASE && code < TFS_E_END)
		return project_errors[code - TFS_E_BASE];
	return strerror(code < 0 ? -code : code);
}

int tfs_err_to_errno(int code)
{
	switch (code) {
	case 0:
		return 0;
	case TFS_ECORRUPT:
	case TFS_ESTALEEPOCH:
	case TFS_ENOTLEADER:
	case TFS_EUNAVAIL:
	case TFS_EUNKNOWN:
	case TFS_ESEQUENCE:
	case TFS_ENOISR:
	case TFS_EPROTO:
		return EIO;
	case TFS_EAUTH:
		return EACCES;
	case TFS_EBELOWSTART:
		return ENODATA;
	case TFS_ENOTBOUNDARY:
	case TFS_EBADCONF:
		return EINVAL;
	case TFS_ESHUTDOWN:
		return ENOTCONN;
	case TFS_EDELETED:
		return ENOENT;
	default:
		return code < 0 ? -code : code;
	}
}
