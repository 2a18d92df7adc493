/*
 * remote.h - reads by a node that holds no replica of a partition: they go
 * to the partition's leader over HTTP (GET /v1/read), so such a node
 * serves the same bytes, sizes and lookups as a replica, and a .follow
 * read there long-polls the leader.
 *
 * GET /v1/read?topic=&partition=&offset=&max=&wait_ms=[&record=|&time=]
 * answers 200 with up to max committed bytes at offset (none at the end;
 * with wait_ms the leader first waits that long for some) and the
 * partition's bounds in headers: X-Topicfs-Start, X-Topicfs-Start-Record,
 * X-Topicfs-Hw, X-Topicfs-Records, and with record= or time= the byte
 * offset found, X-Topicfs-Offset; 416 below the start (the bounds still
 * come), 409 when this node does not lead the partition.
 *
 * Threads: a read's done runs on the HTTP client's thread or the timer
 * thread (a retry), never with a lock held.
 */
#ifndef TFS_REMOTE_H
#define TFS_REMOTE_H

#include <stdint.h>

#include "auth.h"
#include "cluster.h"
#include "httpc.h"
#include "httpd.h"
#include "store.h"
#include "timer.h"

struct tfs_remote;

struct tfs_remote_config {
	const struct tfs_conf *conf;
	struct tfs_store *store;
	struct tfs_cluster *cluster;
	struct tfs_httpd *httpd;	/* the route is added: before it listens */
	struct tfs_httpc *httpc;
	struct tfs_auth *auth;
	struct tfs_timers *timers;
};

int tfs_remote_new(const struct tfs_remote_config *cfg,
		   struct tfs_remote **out);
/* After the HTTP client stopped (reads in flight have ended).  NULL is
 * fine. */
void tfs_remote_free(struct tfs_remote *rm);

enum tfs_remote_lookup { TFS_LOOKUP_NONE, TFS_LOOKUP_RECORD, TFS_LOOKUP_TIME };

struct tfs_remote_read {
	/* in */
	uint32_t topic, part;
	uint64_t offset;
	size_t max;			/* 0: the bounds only */
	int64_t wait_ms;		/* > 0: wait at the leader for data */
	enum tfs_remote_lookup lookup;
	uint64_t key;			/* the record, or the time in ms */
	void (*done)(struct tfs_remote_read *r, int status);
	void *priv;
	/* out, when done runs with 0 (or TFS_EBELOWSTART: bounds only) */
	struct tfs_buf data;
	uint64_t start, start_record, hw, hw_record;
	uint64_t found;			/* the lookup's offset */
	/* private */
	struct tfs_remote *rm;
	struct tfs_http_req http;
	struct tfs_timer retry;
	int64_t deadline;
	char url[512];
	char *headers[6];
};

/*
 * Reads from the partition's leader, retrying through leadership changes
 * until request.timeout.ms.  done(r, status) runs exactly once: 0,
 * TFS_EBELOWSTART, -ENXIO (a lookup past the end), -ECANCELED (cancelled)
 * or -EIO.  Free r->data after.
 */
void tfs_remote_read(struct tfs_remote *rm, struct tfs_remote_read *r);

/* Ends r early (done runs with -ECANCELED, or already ran). */
void tfs_remote_cancel(struct tfs_remote *rm, struct tfs_remote_read *r);

#endif
