/*
 * framer.h - cuts a stream of writes into batches of whole records: the
 * trailing partial line of each writer is held until a later write
 * completes it, and a record longer than max.record.bytes is refused with
 * EFBIG without any fragment of it being stored.  No FUSE, no partition:
 * the FUSE write path holds one framer per open file, and the HTTP
 * produce path will hold one per producer stream.
 *
 * The EFBIG rules (why they are this intricate is told in src/framer.c):
 *  - the write that carries a too-long record is refused, and none of its
 *    records is stored; a held partial line it belongs to, or that it
 *    would have completed, is dropped;
 *  - if the refused record's start had been accepted (held) by an earlier
 *    write, the rest of that line is refused too, up to and including the
 *    write that carries its '\n' ("dropping");
 *  - the bytes of the last refused write are kept: a write that starts
 *    with them is a re-send (after a short count that hid the EFBIG, or a
 *    buffered writer's retry); the first re-send is refused again so the
 *    program surely hears EFBIG, a later one has them dropped and the rest
 *    of the write taken.
 *
 * Thread-safety: none; the owner serialises calls (fsops holds the open
 * file's mutex).
 */
#ifndef TFS_FRAMER_H
#define TFS_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "util.h"

struct tfs_framer {
	struct tfs_buf partial;		/* the trailing partial line */
	bool dropping;			/* refuse writes up to a line's end */
	bool skipping;			/* drop a re-sent refused line's rest */
	struct tfs_buf refused;		/* the last refused write's bytes */
	size_t refused_pos;		/* how much of it a re-send matched */
	bool refused_told;		/* the program surely got EFBIG */
	bool refused_line_ends;		/* refused ends with the line's '\n' */
};

/* A batch to append: the held bytes, then whole lines of the write. */
struct tfs_frame {
	struct iovec iov[2];
	int iovcnt;
	const char *rest;		/* the new partial line, after it */
	size_t rest_len;
};

void tfs_framer_init(struct tfs_framer *f);
void tfs_framer_release(struct tfs_framer *f);

enum {
	TFS_FRAME_HOLD = 0,		/* nothing to append; the write is taken */
	TFS_FRAME_BATCH = 1,		/* append *out as one batch */
};

/*
 * Frames one write of buf[0..n) with records of at most max bytes (a
 * held partial line counts as too long once it leaves no room for the
 * '\n' close adds).  Returns TFS_FRAME_HOLD (the bytes were held or
 * dropped: answer the write as complete), TFS_FRAME_BATCH (append out's
 * batch; if that succeeds call tfs_framer_commit, if not the framer is
 * unchanged and the write fails), or -EFBIG (refuse the write).  out
 * points into f and buf: valid until the next call.
 */
int tfs_framer_write(struct tfs_framer *f, const char *buf, size_t n,
		     size_t max, struct tfs_frame *out);

/* The batch of the last tfs_framer_write was appended: hold its rest. */
void tfs_framer_commit(struct tfs_framer *f, const struct tfs_frame *fr);

/*
 * At close: the held partial line with '\n' added, as a batch in out.
 * Returns false when nothing is held.  Then call tfs_framer_close_done
 * with whether the append succeeded: the line is forgotten, or kept (without
 * the '\n') for a later attempt.
 */
bool tfs_framer_close_line(struct tfs_framer *f, struct tfs_frame *out);
void tfs_framer_close_done(struct tfs_framer *f, bool appended);

/* Bytes held now (a partial line). */
size_t tfs_framer_held(const struct tfs_framer *f);

#endif
