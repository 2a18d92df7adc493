/*
 * fsops_io.c - open files: open, read, write, flush, release, fsync, poll
 * and lseek on partitions, their .follow views and the status files.
 *
 * Partition files are opened with direct_io: every read and write reaches
 * the daemon, so no reader is ever served a stale page and every O_APPEND
 * write lands at the true end, whatever size the kernel believes.
 *
 * WRITES go through the open file's framer (framer.h): a write appends
 * the whole lines it completes as one batch and holds the rest; close()
 * appends a held line with '\n' added; records longer than
 * max.record.bytes are refused with EFBIG.  Batches of two writers never
 * interleave inside a record because only whole lines are appended.
 *
 * PARKED REQUESTS.  A .follow read at the committed end, an fsync, and a
 * durability=sync write are parked, not blocked: the request is answered
 * later by the thread that completes it (the appender, the sync worker),
 * so a thousand idle followers hold no threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsops_int.h"
#include "log.h"
#include "status.h"
#include "util.h"
#include "banned.h"

/* --- handles ----------------------------------------------------------------- */

static struct handle *handle_new(struct tfs_fs *fs, struct node *n)
{
	struct handle *h = tfs_calloc(1, sizeof(*h));

	tfs_ref_init(&h->refs, 1);
	h->kind = n->kind;
	h->fs = fs;
	h->part = n->part;
	if (n->t)
		h->t = tfs_topic_ref(n->t);
	if (n->p)
		h->p = tfs_partition_ref(n->p);
	pthread_mutex_init(&h->mu, NULL);
	tfs_framer_init(&h->framer);
	pthread_mutex_lock(&fs->lock);
	tfs_list_add_tail(&fs->handles, &h->link);
	pthread_mutex_unlock(&fs->lock);
	atomic_fetch_add(&fs->nhandles, 1);
	return h;
}

struct handle *fsops_handle_ref(struct handle *h)
{
	tfs_ref_get(&h->refs);
	return h;
}

void fsops_handle_unref(struct handle *h)
{
	if (!tfs_ref_put(&h->refs))
		return;
	pthread_mutex_lock(&h->fs->lock);
	tfs_list_del(&h->link);
	pthread_mutex_unlock(&h->fs->lock);
	atomic_fetch_sub(&h->fs->nhandles, 1);
	tfs_framer_release(&h->framer);
	tfs_readahead_release(&h->ra);
	tfs_partition_unref(h->p);
	tfs_topic_unref(h->t);
	pthread_mutex_destroy(&h->mu);
	free(h->text);
	free(h);
}

static void make_text(struct tfs_fs *fs, struct handle *h)
{
	struct tfs_node_info info = {
		.version = fs->version,
		.mountpoint = fs->mountpoint,
		.data_dir = tfs_store_dir(fs->store),
		.started_mono_ms = tfs_store_started(fs->store),
		.open_handles = atomic_load(&fs->nhandles),
		.parked_reads = atomic_load(&fs->parked_reads),
		.cluster = fs->cluster,
		.repl = fs->cfg->repl,
		.repair = fs->cfg->repair,
		.produce = fs->produce,
		.peer_refused = fs->cfg->peer_refused
					? atomic_load(fs->cfg->peer_refused)
					: 0,
	};
	char host[256] = "localhost";

	gethostname(host, sizeof(host) - 1);
	info.node = host;
	if (h->kind == K_STATUS)
		h->text = tfs_status_json(fs->store, &info, &h->text_len);
	else
		h->text = tfs_status_metrics(fs->store, &info, &h->text_len);
}

void fsops_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tfs_fs *fs = fs_of(req);
	bool write = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct handle *h;
	struct node n;
	int rc = fsops_resolve(fs, ino, &n);

	if (rc) {
		reply_code(req, rc);
		return;
	}
	if (n.kind != K_PART && n.kind != K_FOLLOW && n.kind != K_STATUS &&
	    n.kind != K_METRICS) {
		rc = -EISDIR;
	} else if (fi->flags & O_TRUNC) {
		rc = -EPERM;	/* an append-only file is never truncated */
	} else if (write && (n.kind != K_PART || !(fi->flags & O_APPEND))) {
		/* The chattr +a rule: writing needs O_APPEND. */
		rc = -EPERM;
	}
	if (rc) {
		if (rc == -EPERM && n.kind == K_PART)
			tfs_debug("open %s/%u: write without O_APPEND refused",
				  tfs_topic_name(n.t), n.part);
		fsops_node_release(&n);
		reply_code(req, rc);
		return;
	}
	h = handle_new(fs, &n);
	h->writable = write;
	fsops_node_release(&n);
	if (h->kind == K_STATUS || h->kind == K_METRICS)
		make_text(fs, h);
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	/* Only writers hold partial lines that close() must commit. */
	fi->noflush = !write;
	if (fuse_reply_open(req, fi) == -ENOENT)
		fsops_handle_unref(h);	/* the opener was interrupted */
}

/* --- reading ---------------------------------------------------------------- */

/*
 * Replies with committed bytes at off.  Returns 1 if it replied (data or
 * error), 0 if there is nothing at off yet (nothing sent).
 *
 * The bytes are checked (tfs_partition_read_ahead), so they are in
 * memory: one writev of the extents answers, with no copy in between
 * (fuse_reply_data would copy several memory buffers into one).
 */
static int reply_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	struct iovec iov[TFS_READ_MAX_EXTENTS];
	struct tfs_readv rv;
	int rc = tfs_partition_read_ahead(h->p, &h->ra, (uint64_t)off, size,
					  &rv);

	if (rc) {
		reply_code(req, rc);
		return 1;
	}
	if (rv.len == 0)
		return 0;
	for (int i = 0; i < rv.n; i++)
		iov[i] = (struct iovec){ (void *)rv.ext[i].mem, rv.ext[i].len };
	atomic_store(&h->pos, (uint64_t)off + rv.len);
	fuse_reply_iov(req, iov, rv.n);
	tfs_readv_release(&rv);
	return 1;
}

/*
 * A .follow read parked at the end.  Its wait ends exactly once (struct
 * tfs_wait): with data, the end of the partition, or an interrupt.  The
 * interrupt callback cancels the wait; when the cancel wins, the callback
 * answers EINTR itself.  Otherwise follow_done answers, after clearing the
 * interrupt callback, which waits for one running: so the callback never
 * touches a finished read.
 */
struct follow_read {
	struct tfs_wait w;
	fuse_req_t req;
	struct handle *h;
	size_t size;
	off_t off;
};

static void follow_free(struct follow_read *fr)
{
	atomic_fetch_sub(&fr->h->fs->parked_reads, 1);
	fsops_handle_unref(fr->h);
	free(fr);
}

static void follow_done(struct tfs_wait *w, int status)
{
	struct follow_read *fr = tfs_container_of(w, struct follow_read, w);

	fuse_req_interrupt_func(fr->req, NULL, NULL);
	if (status == -EINTR)
		fuse_reply_err(fr->req, EINTR);
	else if (status || !reply_read(fr->req, fr->h, fr->size, fr->off))
		fuse_reply_buf(fr->req, NULL, 0);	/* end of file */
	follow_free(fr);
}

static void follow_interrupt(fuse_req_t req, void *data)
{
	struct follow_read *fr = data;

	if (tfs_wait_cancel(fr->h->p, &fr->w, -EINTR)) {
		fuse_reply_err(req, EINTR);
		follow_free(fr);
	}
}

static void follow_park(fuse_req_t req, struct handle *h, size_t size,
			off_t off)
{
	struct follow_read *fr = tfs_calloc(1, sizeof(*fr));

	fr->req = req;
	fr->h = fsops_handle_ref(h);
	fr->size = size;
	fr->off = off;
	fr->w.offset = (uint64_t)off;
	fr->w.done = follow_done;
	atomic_fetch_add(&h->fs->parked_reads, 1);
	fuse_req_interrupt_func(req, follow_interrupt, fr);
	tfs_wait_start(h->p, &fr->w);
}

/*
 * A read of a partition without a replica here, from its leader.  A
 * .follow read long-polls the leader until data comes, again and again,
 * until interrupted (the cancel ends the HTTP request) or the mount is
 * detached.  As for parked local reads, the completion first clears the
 * interrupt callback, which waits for a running one; a completion that
 * runs inside that callback (a cancel that found the read between two
 * tries) does not clear it.
 */
struct rread {
	struct tfs_remote_read r;
	fuse_req_t req;
	struct handle *h;
	bool follow, nonblock;
	_Atomic pthread_t interrupter;
	atomic_bool in_interrupt;
};

static void rread_free(struct rread *rr)
{
	tfs_buf_release(&rr->r.data);
	fsops_handle_unref(rr->h);
	free(rr);
}

static void rread_done(struct tfs_remote_read *r, int status)
{
	struct rread *rr = tfs_container_of(r, struct rread, r);
	bool inside = atomic_load(&rr->in_interrupt) &&
		      pthread_equal(atomic_load(&rr->interrupter),
				    pthread_self());

	if (status == 0 && r->data.len == 0 && rr->follow &&
	    !atomic_load(&rr->h->fs->detached) && !inside &&
	    !atomic_load(&rr->in_interrupt)) {
		tfs_remote_read(rr->h->fs->remote, r);	/* poll again */
		return;
	}
	if (!inside)
		fuse_req_interrupt_func(rr->req, NULL, NULL);
	if (status == -ECANCELED || (status == 0 && rr->follow &&
				     r->data.len == 0 &&
				     atomic_load(&rr->in_interrupt))) {
		fuse_reply_err(rr->req, EINTR);
	} else if (status) {
		reply_code(rr->req, status);
	} else if (r->data.len == 0 && rr->nonblock) {
		atomic_store(&rr->h->remote_hw, r->hw);
		fsops_note_size(rr->h, r->offset);	/* it reads there */
		fuse_reply_err(rr->req, EAGAIN);
	} else {
		atomic_store(&rr->h->remote_hw, r->hw);
		atomic_store(&rr->h->pos, r->offset + r->data.len);
		fuse_reply_buf(rr->req, r->data.data, r->data.len);
	}
	rread_free(rr);
}

static void rread_interrupt(fuse_req_t req, void *data)
{
	struct rread *rr = data;

	atomic_store(&rr->interrupter, pthread_self());
	atomic_store(&rr->in_interrupt, true);
	tfs_remote_cancel(rr->h->fs->remote, &rr->r);
}

static void remote_read(fuse_req_t req, struct handle *h, size_t size,
			off_t off, bool follow, bool nonblock)
{
	struct rread *rr = tfs_calloc(1, sizeof(*rr));

	rr->req = req;
	rr->h = fsops_handle_ref(h);
	rr->follow = follow && !nonblock;
	rr->nonblock = follow && nonblock;
	rr->r.topic = tfs_topic_id(h->t);
	rr->r.part = h->part;
	rr->r.offset = (uint64_t)off;
	rr->r.max = size;
	rr->r.wait_ms = rr->follow ? 10000 : 0;
	rr->r.done = rread_done;
	if (rr->follow)
		fuse_req_interrupt_func(req, rread_interrupt, rr);
	tfs_remote_read(h->fs->remote, &rr->r);
}

void fsops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	if ((h->kind == K_PART || h->kind == K_FOLLOW) &&
	    fsops_remote(h->fs, h->p)) {
		remote_read(req, h, size, off, h->kind == K_FOLLOW,
			    fi->flags & O_NONBLOCK);
		return;
	}
	switch (h->kind) {
	case K_STATUS:
	case K_METRICS:
		/* The kernel completes the read while our writev of the
		 * reply is still returning; the reader may then close, and
		 * a release on another thread free the text under us. */
		fsops_handle_ref(h);
		if ((size_t)off >= h->text_len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, h->text + off,
				       TFS_MIN(size, h->text_len - (size_t)off));
		fsops_handle_unref(h);
		return;
	case K_PART:
		if (!reply_read(req, h, size, off))
			fuse_reply_buf(req, NULL, 0);
		return;
	case K_FOLLOW:
		if (reply_read(req, h, size, off))
			return;
		if (fi->flags & O_NONBLOCK) {
			fuse_reply_err(req, EAGAIN);
			return;
		}
		follow_park(req, h, size, off);
		return;
	default:
		fuse_reply_err(req, EISDIR);
	}
}

/* --- writing ---------------------------------------------------------------- */

/*
 * An append on behalf of a request.  The request is never answered while
 * a lock is held: the writer's next write() arrives the moment it is, and
 * would find the open file still locked (a futex round trip per write).
 * So an append that completes inside tfs_partition_append() leaves the
 * answer to its submitter, which sends it after unlocking; one that
 * completes later (durability=sync) is answered by the thread that
 * completes it.  `state` settles which of the two it is.
 */
enum { WR_SUBMITTING, WR_LEFT, WR_DONE };

struct write_req {
	struct tfs_append a;
	struct tfs_write w;		/* in a cluster, instead of a */
	fuse_req_t req;
	size_t reply;		/* bytes to report written */
	bool is_flush;
	atomic_int state;
	int status;
};

static void write_reply(struct write_req *wr)
{
	if (wr->status)
		reply_code(wr->req, wr->status);
	else if (wr->is_flush)
		fuse_reply_err(wr->req, 0);
	else
		fuse_reply_write(wr->req, wr->reply);
	free(wr);
}

static void write_completed(struct write_req *wr, int status)
{
	int expect = WR_SUBMITTING;

	wr->status = status;
	if (atomic_compare_exchange_strong(&wr->state, &expect, WR_DONE))
		return;	/* the submitter answers once it has unlocked */
	write_reply(wr);
}

static void write_done(struct tfs_append *a, int status)
{
	write_completed(tfs_container_of(a, struct write_req, a), status);
}

static void write_produced(struct tfs_write *w, int status)
{
	write_completed(tfs_container_of(w, struct write_req, w), status);
}

/* Hands iov to the cluster's produce layer for wr (wr->w.done set). */
static void produce(struct handle *h, struct write_req *wr,
		    const struct iovec *iov, int iovcnt, bool is_sync)
{
	wr->w.p = h->p;
	wr->w.topic = tfs_topic_id(h->t);
	wr->w.part = h->part;
	wr->w.iov = iov;
	wr->w.iovcnt = iovcnt;
	wr->w.is_sync = is_sync;
	tfs_produce_submit(h->fs->produce, &wr->w);
}

/*
 * The submitter's side: call after releasing every lock.  Answers the
 * writer if the append is complete, then wakes the readers it reached.
 */
static void submit_finish(struct write_req *wr)
{
	int expect = WR_SUBMITTING;
	struct tfs_list woken;

	/* wr may be gone once answered: take the woken readers first. */
	tfs_list_init(&woken);
	tfs_list_splice_tail(&woken, &wr->a.woken);
	if (!atomic_compare_exchange_strong(&wr->state, &expect, WR_LEFT))
		write_reply(wr);
	tfs_partition_wake_list(&woken);
}

/*
 * Appends iov as one batch for request req (reply: bytes to report, or a
 * flush).  Returns 0 when accepted, with *pending to pass to
 * submit_finish() once h->mu is released; or the error, nothing answered.
 * h->mu held.
 */
static int submit(fuse_req_t req, struct handle *h, const struct iovec *iov,
		  int iovcnt, size_t reply, bool is_flush,
		  struct write_req **pending)
{
	struct write_req *wr = tfs_calloc(1, sizeof(*wr));
	int rc;

	wr->req = req;
	wr->reply = reply;
	wr->is_flush = is_flush;
	atomic_init(&wr->state, WR_SUBMITTING);
	if (h->fs->produce) {
		tfs_list_init(&wr->a.woken);
		wr->w.done = write_produced;
		produce(h, wr, iov, iovcnt, false);
		*pending = wr;
		return 0;
	}
	wr->a.iov = iov;
	wr->a.iovcnt = iovcnt;
	wr->a.flags = TFS_APPEND_DEFER_WAKE;
	wr->a.done = write_done;
	rc = tfs_partition_append(h->p, &wr->a);
	if (rc)
		free(wr);
	else
		*pending = wr;
	return rc;
}

void fsops_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		 size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	size_t max = (size_t)tfs_conf_get(h->fs->conf,
					  TFS_CONF_MAX_RECORD_BYTES);
	struct write_req *wr;
	struct tfs_frame fr;
	int rc;

	if (h->kind != K_PART || !h->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	pthread_mutex_lock(&h->mu);
	rc = tfs_framer_write(&h->framer, buf, size, max, &fr);
	if (rc == TFS_FRAME_BATCH) {
		rc = submit(req, h, fr.iov, fr.iovcnt, size, false, &wr);
		if (rc == 0) {
			/* Keep the new partial line; answer after unlocking. */
			tfs_framer_commit(&h->framer, &fr);
			pthread_mutex_unlock(&h->mu);
			submit_finish(wr);
			return;
		}
	}
	pthread_mutex_unlock(&h->mu);
	if (rc == -EFBIG)
		tfs_info("%s: record longer than max.record.bytes (%zu) "
			 "refused",
			 tfs_partition_name(h->p), max);
	if (rc == TFS_FRAME_HOLD)
		fuse_reply_write(req, size);
	else
		reply_code(req, rc);
}

static void release_done(struct tfs_append *a, int status)
{
	free(tfs_container_of(a, struct write_req, a));
}

static void release_produced(struct tfs_write *w, int status)
{
	if (status)
		tfs_warn("topic %" PRIu32 " partition %" PRIu32 ": partial "
			 "line lost at close: %s",
			 w->topic, w->part, tfs_strerror(status));
	free(tfs_container_of(w, struct write_req, w));
}

/*
 * Commits a held partial line with '\n'.  With req (a flush): returns the
 * pending append to finish after unlocking, or NULL with *answer the code
 * to answer req with (0 when there was nothing to commit).  Without req
 * (release): nothing to answer.  h->mu held.
 */
static struct write_req *commit_partial(fuse_req_t req, struct handle *h,
					int *answer)
{
	struct write_req *wr = NULL;
	struct tfs_frame fr;
	int rc;

	*answer = 0;
	if (!tfs_framer_close_line(&h->framer, &fr))
		return NULL;
	if (req) {
		rc = submit(req, h, fr.iov, fr.iovcnt, 0, true, &wr);
		if (rc)
			*answer = rc;
	} else {
		struct write_req *rel = tfs_calloc(1, sizeof(*rel));

		/* Release has no one to answer: only the data matters. */
		if (h->fs->produce) {
			rel->w.done = release_produced;
			produce(h, rel, fr.iov, fr.iovcnt, false);
			tfs_framer_close_done(&h->framer, true);
			return NULL;
		}
		rel->a.iov = fr.iov;
		rel->a.iovcnt = fr.iovcnt;
		rel->a.done = release_done;
		rc = tfs_partition_append(h->p, &rel->a);
		if (rc) {
			free(rel);
			tfs_warn("%s: partial line lost at close: %s",
				 tfs_partition_name(h->p), tfs_strerror(rc));
		}
	}
	/* A failed flush keeps the line for a later attempt (at release);
	 * release itself has no later. */
	tfs_framer_close_done(&h->framer, rc == 0 || !req);
	return wr;
}

void fsops_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	if (h->kind != K_PART || !h->writable) {
		fuse_reply_err(req, 0);
		return;
	}
	struct write_req *wr;
	int answer;

	pthread_mutex_lock(&h->mu);
	wr = commit_partial(req, h, &answer);
	pthread_mutex_unlock(&h->mu);
	if (wr)
		submit_finish(wr);
	else
		reply_code(req, answer);
}

void fsops_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	if (h->kind == K_PART && h->writable) {
		int unused;

		pthread_mutex_lock(&h->mu);
		commit_partial(NULL, h, &unused);
		pthread_mutex_unlock(&h->mu);
	}
	fsops_poll_release(h);
	fsops_handle_unref(h);
	fuse_reply_err(req, 0);
}

struct sync_req {
	struct tfs_syncreq r;
	fuse_req_t req;
};

static void sync_done(struct tfs_syncreq *r, int status)
{
	struct sync_req *sr = tfs_container_of(r, struct sync_req, r);

	reply_code(sr->req, status);
	free(sr);
}

void fsops_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	struct sync_req *sr;
	int rc;

	if (h->kind != K_PART) {
		fuse_reply_err(req, 0);
		return;
	}
	if (h->fs->produce) {
		/* Durable on every in-sync replica: the leader knows. */
		struct write_req *wr = tfs_calloc(1, sizeof(*wr));

		wr->req = req;
		wr->is_flush = true;
		atomic_init(&wr->state, WR_LEFT);
		wr->w.done = write_produced;
		produce(h, wr, NULL, 0, true);
		return;
	}
	sr = tfs_calloc(1, sizeof(*sr));
	sr->req = req;
	sr->r.done = sync_done;
	rc = tfs_partition_sync(h->p, &sr->r);
	if (rc != 0) {
		free(sr);
		reply_code(req, rc == 1 ? 0 : rc);
	}
}

/* --- poll and seek ----------------------------------------------------------- */

/*
 * A registered poll: one per POLL request that asked to be notified, never
 * reused.  The wake-up of an older one may still be running (its wait
 * ended, its notification not yet sent) when the next POLL on the same
 * file arrives, or another thread polls the same file at once: a wait
 * embedded in the handle would then be parked twice and corrupt the
 * partition's list (found by follow.bats, 48 threads polling one file).
 */
struct poll_wait {
	struct tfs_wait w;
	struct handle *h;		/* a reference */
	struct fuse_pollhandle *ph;
};

static void poll_wait_free(struct poll_wait *pw)
{
	fuse_pollhandle_destroy(pw->ph);
	fsops_handle_unref(pw->h);
	free(pw);
}

/*
 * The wait ended: data came or the partition went away, and the kernel,
 * notified, polls again and sees which.  A wait cancelled by a newer
 * poll of the file before it parked ends here with -ECANCELED and is
 * dropped silently: notifying would wake every poller of the file, whose
 * new polls would cancel each other's waits, a storm.
 */
static void poll_done(struct tfs_wait *w, int status)
{
	struct poll_wait *pw = tfs_container_of(w, struct poll_wait, w);
	struct handle *h = pw->h;

	if (status != -ECANCELED)
		fuse_lowlevel_notify_poll(pw->ph);
	pthread_mutex_lock(&h->mu);
	if (h->pw == pw)
		h->pw = NULL;
	pthread_mutex_unlock(&h->mu);
	poll_wait_free(pw);
}

/*
 * Drops the registered poll unless its wait already ended (then
 * poll_done frees it).  h->mu held; the caller holds a reference to h
 * besides the poll's.
 */
static void rpoll_cancel(struct handle *h);

static void poll_cancel(struct handle *h)
{
	struct poll_wait *pw = h->pw;

	h->pw = NULL;
	if (pw && tfs_wait_cancel(h->p, &pw->w, -ECANCELED))
		poll_wait_free(pw);
	rpoll_cancel(h);
}

/*
 * A registered poll of a .follow file whose partition has no replica
 * here: a bounds-only read that long-polls the leader until its committed
 * end passes the reader's position, again and again, then notifies.  Two
 * references: the read in flight's and the handle's registration (h->rpw,
 * dropped by whoever clears it), so a cancel never touches a freed poll.
 * A cancel that finds the read between two tries is seen by the next try,
 * which stops.
 */
struct rpoll {
	struct tfs_remote_read r;
	struct handle *h;		/* a reference */
	struct fuse_pollhandle *ph;
	uint64_t pos;
	atomic_int refs;
	atomic_bool cancelled;
};

static void rpoll_put(struct rpoll *rp)
{
	if (!tfs_ref_put(&rp->refs))
		return;
	fuse_pollhandle_destroy(rp->ph);
	tfs_buf_release(&rp->r.data);
	fsops_handle_unref(rp->h);
	free(rp);
}

static void rpoll_done(struct tfs_remote_read *r, int status)
{
	struct rpoll *rp = tfs_container_of(r, struct rpoll, r);
	struct handle *h = rp->h;

	if (status == 0)
		atomic_store(&h->remote_hw, r->hw);
	if (status == 0 && r->hw <= rp->pos &&
	    !atomic_load(&rp->cancelled) && !atomic_load(&h->fs->detached)) {
		tfs_remote_read(h->fs->remote, r);	/* wait again */
		return;
	}
	/* Data, an error a read will report, or the mount going: the
	 * kernel polls again and finds out which. */
	if (!atomic_load(&rp->cancelled))
		fuse_lowlevel_notify_poll(rp->ph);
	pthread_mutex_lock(&h->mu);
	bool registered = h->rpw == rp;
	if (registered)
		h->rpw = NULL;
	pthread_mutex_unlock(&h->mu);
	if (registered)
		rpoll_put(rp);
	rpoll_put(rp);
}

/* h->mu held. */
static void rpoll_cancel(struct handle *h)
{
	struct rpoll *rp = h->rpw;

	if (!rp)
		return;
	h->rpw = NULL;
	atomic_store(&rp->cancelled, true);
	tfs_remote_cancel(h->fs->remote, &rp->r);
	rpoll_put(rp);		/* the registration's */
}

/* fsops_poll for a .follow file read from the leader. */
static void remote_poll(fuse_req_t req, struct handle *h,
			struct fuse_pollhandle *ph)
{
	struct rpoll *rp = NULL;
	uint64_t pos = atomic_load(&h->pos);
	unsigned revents = 0;

	pthread_mutex_lock(&h->mu);
	rpoll_cancel(h);
	if (atomic_load(&h->remote_hw) > pos) {
		revents = POLLIN | POLLRDNORM;
	} else if (atomic_load(&h->fs->detached)) {
		revents = POLLIN | POLLHUP;
	} else if (ph) {
		rp = tfs_calloc(1, sizeof(*rp));
		rp->h = fsops_handle_ref(h);
		rp->ph = ph;
		rp->pos = pos;
		tfs_ref_init(&rp->refs, 2);
		rp->r.topic = tfs_topic_id(h->t);
		rp->r.part = h->part;
		rp->r.offset = pos;
		rp->r.max = 0;		/* the bounds */
		rp->r.wait_ms = 10000;
		rp->r.done = rpoll_done;
		h->rpw = rp;
		ph = NULL;
	}
	pthread_mutex_unlock(&h->mu);
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, revents);
	if (rp)
		tfs_remote_read(h->fs->remote, &rp->r);
}

void fsops_poll_release(struct handle *h)
{
	if (!h->p)
		return;
	pthread_mutex_lock(&h->mu);
	poll_cancel(h);
	pthread_mutex_unlock(&h->mu);
}

void fsops_note_size(struct handle *h, uint64_t size)
{
	uint64_t pos = atomic_load(&h->pos);

	while (pos < size &&
	       !atomic_compare_exchange_weak(&h->pos, &pos, size))
		;
}

/*
 * Readable means a read at the reader's position would not block.  The
 * kernel never tells the daemon that position: it is taken as the end of
 * the last read, or the size last reported to this open file (fstat, or
 * lseek(SEEK_END), which asks for the size), whichever is later.  So
 * after a seek to the end, poll waits for new data, as socat and event
 * loops expect; a reader that fstats and polls before its first read
 * waits for the next append, then reads from where it really is.  A
 * position below the retained start is readable: the read fails at once.
 */
void fsops_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		struct fuse_pollhandle *ph)
{
	struct handle *h = handle_of(fi);
	struct poll_wait *pw = NULL;
	struct tfs_bounds in;
	unsigned revents = 0;

	if (h->kind == K_FOLLOW && fsops_remote(h->fs, h->p)) {
		remote_poll(req, h, ph);
		return;
	}
	if (h->kind != K_FOLLOW) {
		/* Regular files are always ready, as on any file system. */
		if (ph)
			fuse_pollhandle_destroy(ph);
		fuse_reply_poll(req, POLLIN | POLLRDNORM |
					     (h->writable ? POLLOUT : 0));
		return;
	}
	pthread_mutex_lock(&h->mu);
	poll_cancel(h);
	tfs_partition_bounds(h->p, &in);
	uint64_t pos = atomic_load(&h->pos);

	if (in.hw > pos) {
		revents = POLLIN | POLLRDNORM;
	} else if (atomic_load(&h->fs->detached)) {
		revents = POLLIN | POLLHUP;	/* a read gives end of file */
	} else if (ph) {
		pw = tfs_calloc(1, sizeof(*pw));
		pw->h = fsops_handle_ref(h);
		pw->ph = ph;
		pw->w.offset = pos;
		pw->w.done = poll_done;
		ph = NULL;
		h->pw = pw;
	}
	pthread_mutex_unlock(&h->mu);
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, revents);
	/* After answering: data that came meanwhile notifies at once. */
	if (pw)
		tfs_wait_start(h->p, &pw->w);
}

/* SEEK_DATA and SEEK_HOLE at off given the retained start and the
 * committed end.  Bytes deleted by retention read as a hole before the
 * start. */
static void reply_seek(fuse_req_t req, off_t off, int whence, uint64_t start,
		       uint64_t hw)
{
	uint64_t o = (uint64_t)off;

	if (off < 0 || o >= hw)
		fuse_reply_err(req, ENXIO);
	else if (whence == SEEK_DATA)
		fuse_reply_lseek(req, (off_t)TFS_MAX(o, start));
	else
		fuse_reply_lseek(req, (off_t)(o < start ? o : hw));
}

/* An lseek of a partition without a replica here: the leader's bounds. */
struct rseek {
	struct tfs_remote_read r;
	fuse_req_t req;
	off_t off;
	int whence;
};

static void rseek_done(struct tfs_remote_read *r, int status)
{
	struct rseek *rs = tfs_container_of(r, struct rseek, r);

	if (status && status != TFS_EBELOWSTART)
		reply_code(rs->req, status);
	else
		reply_seek(rs->req, rs->off, rs->whence, r->start, r->hw);
	tfs_buf_release(&r->data);
	free(rs);
}

void fsops_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		 struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	struct tfs_bounds in;

	if (!h->p || (whence != SEEK_DATA && whence != SEEK_HOLE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (fsops_remote(h->fs, h->p)) {
		struct rseek *rs = tfs_calloc(1, sizeof(*rs));

		rs->req = req;
		rs->off = off;
		rs->whence = whence;
		rs->r.topic = tfs_topic_id(h->t);
		rs->r.part = h->part;
		rs->r.done = rseek_done;
		tfs_remote_read(h->fs->remote, &rs->r);
		return;
	}
	tfs_partition_bounds(h->p, &in);
	reply_seek(req, off, whence, in.start, in.hw);
}

/* --- attributes of partitions without a replica here ----------------------- */

struct rattr {
	struct tfs_remote_read r;
	fuse_req_t req;
	struct handle *h;		/* a reference, or NULL */
	struct stat st;
	double timeout;
	char key[96];
	size_t size;
};

static void rattr_done(struct tfs_remote_read *r, int status)
{
	struct rattr *ra = tfs_container_of(r, struct rattr, r);

	if (status && status != TFS_EBELOWSTART) {
		reply_code(ra->req, status);
	} else {
		ra->st.st_size = (off_t)r->hw;
		if (ra->h) {
			atomic_store(&ra->h->remote_hw, r->hw);
			fsops_note_size(ra->h, r->hw);
		}
		fuse_reply_attr(ra->req, &ra->st, ra->timeout);
	}
	if (ra->h)
		fsops_handle_unref(ra->h);
	tfs_buf_release(&r->data);
	free(ra);
}

void fsops_remote_getattr(fuse_req_t req, struct tfs_fs *fs, uint32_t topic,
			  uint32_t part, const struct stat *st,
			  double timeout, struct handle *h)
{
	struct rattr *ra = tfs_calloc(1, sizeof(*ra));

	ra->h = h ? fsops_handle_ref(h) : NULL;
	ra->req = req;
	ra->st = *st;
	ra->timeout = timeout;
	ra->r.topic = topic;
	ra->r.part = part;
	ra->r.done = rattr_done;
	tfs_remote_read(fs->remote, &ra->r);
}

static void rxattr_done(struct tfs_remote_read *r, int status)
{
	struct rattr *ra = tfs_container_of(r, struct rattr, r);
	char buf[64];
	int n = -ENODATA;

	if (r->lookup != TFS_LOOKUP_NONE)
		n = status ? status
			   : snprintf(buf, sizeof(buf), "%" PRIu64, r->found);
	else if (status && status != TFS_EBELOWSTART)
		n = status;
	else if (!strcmp(ra->key, "start"))
		n = snprintf(buf, sizeof(buf), "%" PRIu64, r->start);
	else if (!strcmp(ra->key, "end"))
		n = snprintf(buf, sizeof(buf), "%" PRIu64, r->hw);
	else if (!strcmp(ra->key, "records"))
		n = snprintf(buf, sizeof(buf), "%" PRIu64, r->hw_record);
	if (n < 0)
		reply_code(ra->req, n);
	else if (ra->size == 0)
		fuse_reply_xattr(ra->req, (size_t)n);
	else if (ra->size < (size_t)n)
		fuse_reply_err(ra->req, ERANGE);
	else
		fuse_reply_buf(ra->req, buf, (size_t)n);
	tfs_buf_release(&r->data);
	free(ra);
}

void fsops_remote_xattr(fuse_req_t req, struct tfs_fs *fs, uint32_t topic,
			uint32_t part, const char *key, size_t size)
{
	struct rattr *ra = tfs_calloc(1, sizeof(*ra));
	char *end;

	ra->req = req;
	ra->size = size;
	snprintf(ra->key, sizeof(ra->key), "%s", key);
	ra->r.topic = topic;
	ra->r.part = part;
	ra->r.done = rxattr_done;
	if (!strncmp(key, "offset.", 7) || !strncmp(key, "time.", 5)) {
		const char *v = key + (key[0] == 'o' ? 7 : 5);

		ra->r.lookup = key[0] == 'o' ? TFS_LOOKUP_RECORD
					     : TFS_LOOKUP_TIME;
		ra->r.key = strtoull(v, &end, 10);
		if (*v < '0' || *v > '9' || *end) {
			free(ra);
			fuse_reply_err(req, ENODATA);
			return;
		}
	}
	tfs_remote_read(fs->remote, &ra->r);
}
