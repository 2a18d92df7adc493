/*
 * base64.c - standard base64 with padding (RFC 4648 section 4), the
 * encoding protobuf's JSON mapping gives bytes fields: etcd's keys and
 * values.  Decoding is strict, since what we decode comes from the
 * network: a text that does not round-trip is refused.
 */
#include <errno.h>
#include <stdint.h>

#include "base64.h"
#include "banned.h"

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void tfs_base64_encode(struct tfs_buf *out, const void *p, size_t n)
{
	const unsigned char *s = p;
	char *d;

	tfs_buf_grow(out, (n + 2) / 3 * 4);
	d = out->data + out->len;
	for (; n >= 3; n -= 3, s += 3) {
		uint32_t v = (uint32_t)s[0] << 16 | s[1] << 8 | s[2];
		*d++ = alphabet[v >> 18];
		*d++ = alphabet[v >> 12 & 63];
		*d++ = alphabet[v >> 6 & 63];
		*d++ = alphabet[v & 63];
	}
	if (n) {
		uint32_t v = (uint32_t)s[0] << 16 | (n == 2 ? s[1] << 8 : 0);
		*d++ = alphabet[v >> 18];
		*d++ = alphabet[v >> 12 & 63];
		*d++ = n == 2 ? alphabet[v >> 6 & 63] : '=';
		*d++ = '=';
	}
	out->len = (size_t)(d - out->data);
	out->data[out->len] = '\0';
}

/* The 6-bit value of c, or -1. */
static int sextet(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int tfs_base64_decode(struct tfs_buf *out, const char *text, size_t n)
{
	size_t start = out->len, pad = 0;

	if (n % 4)
		return -EINVAL;
	if (n && text[n - 1] == '=')
		pad = text[n - 2] == '=' ? 2 : 1;
	tfs_buf_grow(out, n / 4 * 3);
	for (size_t i = 0; i < n; i += 4) {
		bool last = i + 4 == n;
		int v[4];
		uint32_t w = 0;

		for (int k = 0; k < 4; k++) {
			bool padded = last && k >= 4 - (int)pad;
			v[k] = padded ? 0 : sextet(text[i + k]);
			if (v[k] < 0)
				goto out_bad;
			w = w << 6 | (uint32_t)v[k];
		}
		out->data[out->len++] = (char)(w >> 16);
		if (last && pad == 2) {
			if (w & 0xffff)
				goto out_bad;	/* stray bits */
			break;
		}
		out->data[out->len++] = (char)(w >> 8);
		if (last && pad == 1) {
			if (w & 0xff)
				goto out_bad;
			break;
		}
		out->data[out->len++] = (char)w;
	}
	out->data[out->len] = '\0';
	return 0;

out_bad:
	out->len = start;
	out->data[out->len] = '\0';
	return -EINVAL;
}
