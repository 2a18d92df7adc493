/*
 * records.h - the self-checking record format shared by the end-to-end
 * test tools writer.c (produces) and checkrecords.c (verifies).
 *
 * A record is one line:
 *
 *   R <writer> <seq> <len> <crc> <payload>\n
 *
 *   writer   decimal writer id
 *   seq      decimal sequence number, 0, 1, 2... per writer
 *   len      decimal length of the whole line, '\n' included
 *   crc      CRC-32 (IEEE) of the payload, 8 lower-case hex digits
 *   payload  letters and digits that are a function of (writer, seq):
 *            rec_payload() regenerates them
 *
 * So a torn record (cut short, or two writers' bytes spliced together)
 * cannot pass: its length, its CRC and its regenerated payload would all
 * have to match.  Only libc: the tools build without the project's code.
 */
#ifndef TFS_TEST_RECORDS_H
#define TFS_TEST_RECORDS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define REC_HEADER_MAX 64

static uint32_t rec_crc_table[256];

static inline void rec_crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		rec_crc_table[i] = c;
	}
}

static inline uint32_t rec_crc(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint32_t c = 0xffffffffu;

	while (n--)
		c = rec_crc_table[(c ^ *b++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static inline uint64_t rec_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Fills out[0..n) with the payload of record (writer, seq). */
static inline void rec_payload(uint64_t writer, uint64_t seq, char *out, size_t n)
{
	static const char abc[] = "abcdefghijklmnopqrstuvwxyz"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
	uint64_t s = rec_mix(writer << 40 ^ seq), r = 0;

	for (size_t i = 0; i < n; i++) {
		if (i % 10 == 0)
			r = rec_mix(s + i);
		out[i] = abc[r & 63];
		r >>= 6;
	}
}

/*
 * Formats record (writer, seq) of total length len into out (at least len
 * bytes; len must leave room for the header).  Returns the length, or 0 if
 * len is too short for the header.
 */
static inline size_t rec_format(uint64_t writer, uint64_t seq, size_t len, char *out)
{
	char hdr[REC_HEADER_MAX];
	int h;

	/* The header's length depends on len's digits: settle it. */
	for (int pass = 0; pass < 2; pass++) {
		h = snprintf(hdr, sizeof(hdr), "R %llu %llu %zu xxxxxxxx ",
			     (unsigned long long)writer,
			     (unsigned long long)seq, len);
		if ((size_t)h + 1 > len)
			return 0;
	}
	size_t plen = len - (size_t)h - 1;
	rec_payload(writer, seq, out + h, plen);
	uint32_t crc = rec_crc(out + h, plen);
	snprintf(hdr, sizeof(hdr), "R %llu %llu %zu %08x ",
		 (unsigned long long)writer, (unsigned long long)seq, len, crc);
	memcpy(out, hdr, (size_t)h);
	out[len - 1] = '\n';
	return len;
}

#endif
