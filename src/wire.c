/*
 * wire.c - replication fetch bodies (wire.h).
 *
 * FORMAT (all integers little-endian).  Both bodies are covered by the
 * peer request's MAC (the request's) or travel over the connection the
 * request opened (the answer); the answer may be zstd-compressed as a
 * whole (Content-Encoding: zstd, see repl.c).
 *
 * Request, 20 bytes then 40 per partition:
 *    0  4  magic "TFQ1"
 *    4  4  follower node id
 *    8  4  longest wait, ms
 *   12  4  most batch bytes wanted in the answer
 *   16  4  n: partitions
 *   per partition:
 *    0  4  topic id
 *    4  4  partition
 *    8  4  leader epoch the follower follows
 *   12  4  E: epoch of the follower's last batch
 *   16  8  O: the follower's log end
 *   24  8  D: the follower's durable end
 *   32  8  the high watermark the follower knows
 *
 * Answer, 12 bytes then, per partition, 80 bytes, the index entries of
 * its batches (64 bytes each, the version 2 index encoding, their CRCs
 * checked) and their bytes:
 *    0  4  magic "TFR1"
 *    4  4  leader node id
 *    8  4  n: partitions
 *   per partition:
 *    0  4  topic id
 *    4  4  partition
 *    8  4  error (enum tfs_fetch_err)
 *   12  4  leader epoch
 *   16  8  high watermark
 *   24  8  log start
 *   32  8  record offset at the log start
 *   40  8  log end
 *   48  4  diverging epoch
 *   52  8  diverging end
 *   60  4  batches
 *   64  8  bytes of the batches
 *   72  8  sync to: fsync up to here before fetching again (0: no)
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "wire.h"
#include "banned.h"

#define REQ_MAGIC "TFQ1"
#define RESP_MAGIC "TFR1"
#define REQ_HEAD 20
#define REQ_PART 40
#define RESP_HEAD 12
#define RESP_PART 80
/* More than any node holds: bounds what a malformed body can allocate. */
#define MAX_PARTS (1u << 24)

void tfs_fetch_req_encode(const struct tfs_fetch_req *r, struct tfs_buf *out)
{
	unsigned char *p;

	tfs_buf_grow(out, REQ_HEAD + (size_t)r->n * REQ_PART);
	p = (unsigned char *)out->data + out->len;
	memcpy(p, REQ_MAGIC, 4);
	tfs_put_le32(p + 4, r->follower);
	tfs_put_le32(p + 8, r->max_wait_ms);
	tfs_put_le32(p + 12, r->max_bytes);
	tfs_put_le32(p + 16, r->n);
	p += REQ_HEAD;
	for (uint32_t i = 0; i < r->n; i++, p += REQ_PART) {
		const struct tfs_fetch_part *f = &r->parts[i];

		tfs_put_le32(p, f->topic);
		tfs_put_le32(p + 4, f->partition);
		tfs_put_le32(p + 8, f->leader_epoch);
		tfs_put_le32(p + 12, f->last_epoch);
		tfs_put_le64(p + 16, f->end);
		tfs_put_le64(p + 24, f->durable);
		tfs_put_le64(p + 32, f->hw);
	}
	out->len += REQ_HEAD + (size_t)r->n * REQ_PART;
	out->data[out->len] = '\0';
}

int tfs_fetch_req_decode(const void *buf, size_t len, struct tfs_fetch_req *r)
{
	const unsigned char *p = buf;

	memset(r, 0, sizeof(*r));
	if (len < REQ_HEAD || memcmp(p, REQ_MAGIC, 4))
		return TFS_EPROTO;
	r->follower = tfs_get_le32(p + 4);
	r->max_wait_ms = tfs_get_le32(p + 8);
	r->max_bytes = tfs_get_le32(p + 12);
	r->n = tfs_get_le32(p + 16);
	if (r->n > MAX_PARTS || len != REQ_HEAD + (size_t)r->n * REQ_PART)
		return TFS_EPROTO;
	r->parts = tfs_calloc(r->n ? r->n : 1, sizeof(*r->parts));
	p += REQ_HEAD;
	for (uint32_t i = 0; i < r->n; i++, p += REQ_PART) {
		struct tfs_fetch_part *f = &r->parts[i];

		f->topic = tfs_get_le32(p);
		f->partition = tfs_get_le32(p + 4);
		f->leader_epoch = tfs_get_le32(p + 8);
		f->last_epoch = tfs_get_le32(p + 12);
		f->end = tfs_get_le64(p + 16);
		f->durable = tfs_get_le64(p + 24);
		f->hw = tfs_get_le64(p + 32);
		if (f->durable > f->end || f->hw > f->end) {
			tfs_fetch_req_release(r);
			return TFS_EPROTO;
		}
	}
	return 0;
}

void tfs_fetch_req_release(struct tfs_fetch_req *r)
{
	free(r->parts);
	r->parts = NULL;
	r->n = 0;
}

void tfs_fetch_resp_begin(uint32_t leader, uint32_t n, struct tfs_buf *out)
{
	unsigned char h[RESP_HEAD];

	memcpy(h, RESP_MAGIC, 4);
	tfs_put_le32(h + 4, leader);
	tfs_put_le32(h + 8, n);
	tfs_buf_add(out, h, sizeof(h));
}

void tfs_fetch_result_encode(const struct tfs_fetch_result *res,
			     struct tfs_buf *out)
{
	unsigned char h[RESP_PART];

	tfs_put_le32(h, res->topic);
	tfs_put_le32(h + 4, res->partition);
	tfs_put_le32(h + 8, res->err);
	tfs_put_le32(h + 12, res->leader_epoch);
	tfs_put_le64(h + 16, res->hw);
	tfs_put_le64(h + 24, res->start);
	tfs_put_le64(h + 32, res->start_record);
	tfs_put_le64(h + 40, res->log_end);
	tfs_put_le32(h + 48, res->diverged_epoch);
	tfs_put_le64(h + 52, res->diverged_end);
	tfs_put_le32(h + 60, res->nbatches);
	tfs_put_le64(h + 64, res->data_len);
	tfs_put_le64(h + 72, res->sync_to);
	tfs_buf_add(out, h, sizeof(h));
	tfs_buf_grow(out, (size_t)res->nbatches * TFS_INDEX_ENTRY_SIZE);
	for (uint32_t i = 0; i < res->nbatches; i++) {
		tfs_index_encode(&res->entries[i],
				 (unsigned char *)out->data + out->len);
		out->len += TFS_INDEX_ENTRY_SIZE;
	}
	out->data[out->len] = '\0';
}

/* Decodes one partition at *p (bounds end); advances *p. */
static int decode_result(const unsigned char **pp, const unsigned char *end,
			 struct tfs_fetch_result *res)
{
	const unsigned char *p = *pp;

	if ((size_t)(end - p) < RESP_PART)
		return TFS_EPROTO;
	res->topic = tfs_get_le32(p);
	res->partition = tfs_get_le32(p + 4);
	res->err = tfs_get_le32(p + 8);
	res->leader_epoch = tfs_get_le32(p + 12);
	res->hw = tfs_get_le64(p + 16);
	res->start = tfs_get_le64(p + 24);
	res->start_record = tfs_get_le64(p + 32);
	res->log_end = tfs_get_le64(p + 40);
	res->diverged_epoch = tfs_get_le32(p + 48);
	res->diverged_end = tfs_get_le64(p + 52);
	res->nbatches = tfs_get_le32(p + 60);
	res->data_len = tfs_get_le64(p + 64);
	res->sync_to = tfs_get_le64(p + 72);
	p += RESP_PART;
	if (res->err > TFS_FETCH_ERR_MAX || res->hw > res->log_end ||
	    res->start > res->hw ||
	    (res->err != TFS_FETCH_OK && (res->nbatches || res->data_len)))
		return TFS_EPROTO;
	if (res->nbatches > (size_t)(end - p) / TFS_INDEX_ENTRY_SIZE)
		return TFS_EPROTO;
	res->entries = tfs_calloc(res->nbatches ? res->nbatches : 1,
				  sizeof(*res->entries));
	uint64_t sum = 0;
	for (uint32_t i = 0; i < res->nbatches; i++, p += TFS_INDEX_ENTRY_SIZE) {
		struct tfs_index_entry *e = &res->entries[i];

		if (tfs_index_decode(p, e))
			return TFS_EPROTO;
		if (i > 0 && (e->offset != e[-1].offset + e[-1].length ||
			      e->record != e[-1].record + e[-1].count))
			return TFS_EPROTO;
		sum += e->length;
	}
	if (sum != res->data_len || res->data_len > (uint64_t)(end - p))
		return TFS_EPROTO;
	res->data = p;
	*pp = p + res->data_len;
	return 0;
}

int tfs_fetch_resp_decode(const void *buf, size_t len,
			  struct tfs_fetch_resp *r)
{
	const unsigned char *p = buf, *end = p + len;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	if (len < RESP_HEAD || memcmp(p, RESP_MAGIC, 4))
		return TFS_EPROTO;
	r->leader = tfs_get_le32(p + 4);
	r->n = tfs_get_le32(p + 8);
	p += RESP_HEAD;
	if (r->n > (size_t)(end - p) / RESP_PART)
		return TFS_EPROTO;
	r->results = tfs_calloc(r->n ? r->n : 1, sizeof(*r->results));
	for (uint32_t i = 0; i < r->n && rc == 0; i++)
		rc = decode_result(&p, end, &r->results[i]);
	if (rc == 0 && p != end)
		rc = TFS_EPROTO;
	if (rc)
		tfs_fetch_resp_release(r);
	return rc;
}

void tfs_fetch_resp_release(struct tfs_fetch_resp *r)
{
	for (uint32_t i = 0; i < r->n && r->results; i++)
		free(r->results[i].entries);
	free(r->results);
	r->results = NULL;
	r->n = 0;
}
