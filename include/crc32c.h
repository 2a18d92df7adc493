/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of Kafka's record batches,
 * with the SSE4.2 crc32 instruction (and AVX-512 VPCLMULQDQ folding on
 * long buffers) when the CPU has it and a table otherwise.  Thread-safe;
 * the only state is set once, at the first call.
 */
#ifndef TFS_CRC32C_H
#define TFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (start with 0) over p[0..n).  Any thread. */
uint32_t tfs_crc32c(uint32_t crc, const void *p, size_t n);

/* The implementations, slowest first. */
enum tfs_crc32c_impl {
	TFS_CRC32C_TABLE,	/* portable: one table lookup per byte */
	TFS_CRC32C_SSE42,	/* the crc32 instruction, three streams */
	TFS_CRC32C_VPCLMUL,	/* AVX-512 folding from 512 bytes, else SSE4.2 */
};

/*
 * The implementation tfs_crc32c() uses: the best the CPU has, unless the
 * environment variable TFS_CRC32C, read once at the first call of any
 * function here, names a lesser one: "table" or "sse4.2" (a path the CPU
 * lacks is never chosen; other values are ignored).  For tests and for
 * running the daemon on the portable path.
 */
enum tfs_crc32c_impl tfs_crc32c_impl(void);

/*
 * tfs_crc32c() through one implementation, for tests that compare them.
 * Returns 0 and sets *out, -ENOTSUP if the CPU lacks impl, -EINVAL for an
 * unknown impl.
 */
int tfs_crc32c_with(enum tfs_crc32c_impl impl, uint32_t crc, const void *p,
		    size_t n, uint32_t *out);

#endif
