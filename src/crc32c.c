/*
 * crc32c.c - CRC-32C with the SSE4.2 instruction and a portable fallback.
 *
 * The hardware path runs three independent streams over 8-byte words so the
 * instruction's 3-cycle latency is hidden, then merges them with the
 * zero-extension operator (multiplying by x^(8*len) mod P).  The fallback is
 * the usual slicing-by-one table, used when the CPU lacks SSE4.2.
 *
 * On CPUs with AVX-512 and VPCLMULQDQ, long buffers are folded 256 bytes
 * at a time with carry-less multiplications (Intel's "Fast CRC Computation
 * for Generic Polynomials Using PCLMULQDQ", widened to four 128-bit lanes
 * per register), about four times the crc32 instruction's rate.  Folding
 * a 128-bit lane A = F.x^64 + S forward by D bits uses
 *   A.x^D = F.(x^(D+64) mod P) + S.(x^D mod P)  (mod P),
 * and since the data are bit-reflected, a carry-less product of a
 * reflected 64-bit half and a constant stored as rev32(k) << 32 comes out
 * multiplied by x: the constants are x^(D+63) and x^(D-1).  They are
 * computed at start-up from the same GF(2) arithmetic the merge uses,
 * not copied from tables.  The last 128 bits, which are congruent to
 * everything before them, and the tail go through the crc32 instruction.
 *
 * The file is compiled for plain x86-64: only the functions that carry a
 * target attribute use SSE4.2, PCLMULQDQ or AVX-512, and tfs_crc32c() calls
 * them only after the CPU check in init(), so the table really runs on a
 * CPU without them.  init() runs once (pthread_once) and sets everything
 * the paths read; nothing is computed lazily afterwards.  TFS_CRC32C in
 * the environment, read by init(), can force a lesser path (crc32c.h).
 */
#include <immintrin.h>
#include <nmmintrin.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "banned.h"

#define POLY 0x82f63b78u	/* reflected Castagnoli polynomial */

/* Set once by init(), read-only afterwards. */
static uint32_t table[256];
static bool have_sse42, have_vpclmul;
static enum tfs_crc32c_impl impl;	/* what tfs_crc32c() uses */
static uint32_t shift_stripe;		/* x^(8*STRIPE), see crc_hw() */
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define STRIPE 4096	/* bytes per stream per round in crc_hw() */

/* Folding constants: [F, S] pairs for distances 256, 192, 128, 64, 48,
 * 32 and 16 bytes (see the header comment). */
enum { K256, K192, K128, K64, K48, K32, K16, NK };
static uint64_t fold_k[NK][2];

static void init_fold_constants(void);
static uint32_t x_pow(uint64_t e);

static void init(void)
{
	const char *force = getenv("TFS_CRC32C");

	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[i] = c;
	}
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
	have_vpclmul = have_sse42 && __builtin_cpu_supports("pclmul") &&
		       __builtin_cpu_supports("avx512f") &&
		       __builtin_cpu_supports("vpclmulqdq");
	init_fold_constants();
	shift_stripe = x_pow(8ull * STRIPE);

	impl = have_vpclmul ? TFS_CRC32C_VPCLMUL
	       : have_sse42 ? TFS_CRC32C_SSE42
			    : TFS_CRC32C_TABLE;
	/* Only ever a lesser path than the CPU allows. */
	if (force && !strcmp(force, "table"))
		impl = TFS_CRC32C_TABLE;
	else if (force && !strcmp(force, "sse4.2") && have_sse42)
		impl = TFS_CRC32C_SSE42;
}

static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t n)
{
	while (n--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

/* Multiplication modulo P in the reflected domain. */
static uint32_t gf_mul(uint32_t a, uint32_t b)
{
	uint32_t r = 0;

	for (int i = 0; i < 32; i++) {
		if (b & 0x80000000u)
			r ^= a;
		b <<= 1;
		a = a & 1 ? (a >> 1) ^ POLY : a >> 1;
	}
	return r;
}

/* x^e mod P, reflected, by square-and-multiply. */
static uint32_t x_pow(uint64_t e)
{
	uint32_t result = 0x80000000u;	/* x^0 */
	uint32_t sq = 0x40000000u;	/* x^1 */

	while (e) {
		if (e & 1)
			result = gf_mul(result, sq);
		sq = gf_mul(sq, sq);
		e >>= 1;
	}
	return result;
}

static void init_fold_constants(void)
{
	static const unsigned bytes[NK] = { 256, 192, 128, 64, 48, 32, 16 };

	for (int i = 0; i < NK; i++) {
		uint64_t d = 8ull * bytes[i];

		fold_k[i][0] = (uint64_t)x_pow(d + 63) << 32;
		fold_k[i][1] = (uint64_t)x_pow(d - 1) << 32;
	}
}

/* One 128-bit lane folded forward by k's distance onto b. */
__attribute__((target("pclmul,sse4.2")))
static __m128i fold128(__m128i a, __m128i b, const uint64_t k[2])
{
	__m128i kk = _mm_set_epi64x((long long)k[1], (long long)k[0]);

	return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(a, kk, 0x00),
					   _mm_clmulepi64_si128(a, kk, 0x11)),
			     b);
}

__attribute__((target("avx512f,vpclmulqdq")))
static __m512i fold512(__m512i a, __m512i b, __m512i k)
{
	return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(a, k, 0x00),
					 _mm512_clmulepi64_epi128(a, k, 0x11),
					 b, 0x96);
}

__attribute__((target("avx512f,vpclmulqdq")))
static __m512i k512(const uint64_t k[2])
{
	return _mm512_broadcast_i32x4(
		_mm_set_epi64x((long long)k[1], (long long)k[0]));
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t n);

/*
 * The register crc over n >= 256 bytes: folds 256-byte blocks into four
 * accumulators, then into one 128-bit lane, and finishes with the crc32
 * instruction on that lane and the tail.
 */
__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2")))
static uint32_t crc_vpclmul(uint32_t crc, const unsigned char *p, size_t n)
{
	__m512i x0 = _mm512_loadu_si512(p), x1 = _mm512_loadu_si512(p + 64);
	__m512i x2 = _mm512_loadu_si512(p + 128), x3 = _mm512_loadu_si512(p + 192);
	__m512i k = k512(fold_k[K256]);

	/* The register joins the data: it is the first 32 bits of it. */
	x0 = _mm512_xor_si512(x0, _mm512_zextsi128_si512(
					  _mm_cvtsi32_si128((int)crc)));
	p += 256;
	n -= 256;
	for (; n >= 256; p += 256, n -= 256) {
		x0 = fold512(x0, _mm512_loadu_si512(p), k);
		x1 = fold512(x1, _mm512_loadu_si512(p + 64), k);
		x2 = fold512(x2, _mm512_loadu_si512(p + 128), k);
		x3 = fold512(x3, _mm512_loadu_si512(p + 192), k);
	}
	x3 = fold512(x0, x3, k512(fold_k[K192]));
	x3 = fold512(x1, x3, k512(fold_k[K128]));
	x3 = fold512(x2, x3, k512(fold_k[K64]));

	__m128i v = _mm512_extracti32x4_epi32(x3, 3);
	v = fold128(_mm512_extracti32x4_epi32(x3, 0), v, fold_k[K48]);
	v = fold128(_mm512_extracti32x4_epi32(x3, 1), v, fold_k[K32]);
	v = fold128(_mm512_extracti32x4_epi32(x3, 2), v, fold_k[K16]);

	uint64_t c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(v));
	c = _mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(v, 1));
	return crc_hw((uint32_t)c, p, n);
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t n)
{
	uint64_t c0 = crc;

	while (n >= 3 * STRIPE) {
		uint64_t c1 = 0, c2 = 0;
		const unsigned char *a = p, *b = p + STRIPE, *c = p + 2 * STRIPE;

		for (size_t i = 0; i < STRIPE; i += 8) {
			uint64_t wa, wb, wc;

			memcpy(&wa, a + i, 8);
			memcpy(&wb, b + i, 8);
			memcpy(&wc, c + i, 8);
			c0 = _mm_crc32_u64(c0, wa);
			c1 = _mm_crc32_u64(c1, wb);
			c2 = _mm_crc32_u64(c2, wc);
		}
		/* crc(A||B) = crc(A) * x^(8|B|) ^ crc0(B), with a zero start. */
		c0 = gf_mul((uint32_t)c0, shift_stripe) ^ (uint32_t)c1;
		c0 = gf_mul((uint32_t)c0, shift_stripe) ^ (uint32_t)c2;
		p += 3 * STRIPE;
		n -= 3 * STRIPE;
	}
	while (n >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c0 = _mm_crc32_u64(c0, w);
		p += 8;
		n -= 8;
	}
	while (n--)
		c0 = _mm_crc32_u8((uint32_t)c0, *p++);
	return (uint32_t)c0;
}

static uint32_t crc_with(enum tfs_crc32c_impl which, uint32_t crc,
			 const unsigned char *p, size_t n)
{
	crc = ~crc;
	if (which == TFS_CRC32C_VPCLMUL && n >= 512)
		crc = crc_vpclmul(crc, p, n);
	else if (which >= TFS_CRC32C_SSE42)
		crc = crc_hw(crc, p, n);
	else
		crc = crc_sw(crc, p, n);
	return ~crc;
}

uint32_t tfs_crc32c(uint32_t crc, const void *p, size_t n)
{
	pthread_once(&once, init);
	return crc_with(impl, crc, p, n);
}

enum tfs_crc32c_impl tfs_crc32c_impl(void)
{
	pthread_once(&once, init);
	return impl;
}

int tfs_crc32c_with(enum tfs_crc32c_impl which, uint32_t crc, const void *p,
		    size_t n, uint32_t *out)
{
	pthread_once(&once, init);
	switch (which) {
	case TFS_CRC32C_TABLE:
		break;
	case TFS_CRC32C_SSE42:
		if (!have_sse42)
			return -ENOTSUP;
		break;
	case TFS_CRC32C_VPCLMUL:
		if (!have_vpclmul)
			return -ENOTSUP;
		break;
	default:
		return -EINVAL;
	}
	*out = crc_with(which, crc, p, n);
	return 0;
}
