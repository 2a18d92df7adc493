/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of Kafka's record batches,
 * with the SSE4.2 crc32 instruction when the CPU has it and a table
 * otherwise.  Thread-safe, no state.
 */
#ifndef TFS_CRC32C_H
#define TFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (start with 0) over p[0..n). */
uint32_t tfs_crc32c(uint32_t crc, const void *p, size_t n);

#endif
