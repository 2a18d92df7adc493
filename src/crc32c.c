/*
 * crc32c.c - CRC-32C with the SSE4.2 instruction and a portable fallback.
 *
 * The hardware path runs three independent streams over 8-byte words so the
 * instruction's 3-cycle latency is hidden, then merges them with the
 * zero-extension operator (multiplying by x^(8*len) mod P).  The fallback is
 * the usual slicing-by-one table, used when the CPU lacks SSE4.2.
 */
#include <nmmintrin.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "crc32c.h"

#define POLY 0x82f63b78u	/* reflected Castagnoli polynomial */

static uint32_t table[256];
static bool have_sse42;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[i] = c;
	}
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
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

/* x^(8*n) mod P, reflected, by square-and-multiply. */
static uint32_t x_pow_8n(size_t n)
{
	uint32_t result = 0x80000000u;	/* x^0 */
	uint32_t sq = 0x00800000u;	/* x^8 */

	while (n) {
		if (n & 1)
			result = gf_mul(result, sq);
		sq = gf_mul(sq, sq);
		n >>= 1;
	}
	return result;
}

#define STRIPE 4096	/* bytes per stream per round */

static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t n)
{
	static uint32_t shift_stripe;	/* x^(8*STRIPE), computed once */
	uint64_t c0 = crc;

	if (!shift_stripe)
		shift_stripe = x_pow_8n(STRIPE);
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

uint32_t tfs_crc32c(uint32_t crc, const void *p, size_t n)
{
	pthread_once(&once, init);
	crc = ~crc;
	crc = have_sse42 ? crc_hw(crc, p, n) : crc_sw(crc, p, n);
	return ~crc;
}
