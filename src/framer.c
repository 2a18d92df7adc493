/*
 * framer.c - whole records out of a stream of writes (framer.h).
 *
 * Why the EFBIG rules are this intricate.  The kernel cuts a write() at
 * max_write and sends the pieces one by one; when a later piece fails,
 * write() returns the short count of the pieces before it, our EFBIG is
 * lost, and the program re-sends the rest.  And buffered writers (stdio,
 * Python, log shippers) re-send a buffer whose write failed.  So:
 *
 *  - If the refused record's start had been accepted (held), the rest of
 *    that line is refused too ("dropping"): later writes fail with EFBIG
 *    up to and including the one that carries the line's '\n'.  As the
 *    byte stream sees it, a program that gives such a line up starts its
 *    next line inside it.
 *  - The bytes of the last refused write (up to the end of the refused
 *    record) are kept.  A write that starts with them is a re-send: the
 *    first one is refused again (its first piece is refused, so the
 *    program surely gets EFBIG), a later one has them dropped and the
 *    rest of the write stored.  So neither a fragment of a refused record
 *    nor a duplicate is ever stored.
 */
#include <errno.h>
#include <string.h>

#include "framer.h"
#include "banned.h"

void tfs_framer_init(struct tfs_framer *f)
{
	memset(f, 0, sizeof(*f));
}

void tfs_framer_release(struct tfs_framer *f)
{
	tfs_buf_release(&f->partial);
	tfs_buf_release(&f->refused);
}

size_t tfs_framer_held(const struct tfs_framer *f)
{
	return f->partial.len;
}

/*
 * Finds the first record in [partial][b, b+n) longer than max, counting a
 * trailing partial line as too long once it leaves no room for the '\n'
 * close() adds.  Returns NULL if there is none; else the end of that
 * record in b (past its '\n', or b + n if it does not end in b), and
 * *first tells whether it is the line the held partial bytes begin.
 */
static const char *too_long(size_t partial, const char *b, size_t n,
			    size_t max, bool *first)
{
	const char *end = b + n, *line = b;
	size_t carry = partial;

	if (partial + n < max)
		return NULL;
	for (*first = true;; *first = false) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *stop = nl ? nl + 1 : end;
		size_t len = carry + (size_t)(stop - line);

		if (nl ? len > max : len >= max)
			return stop;
		if (!nl)
			return NULL;
		line = nl + 1;
		carry = 0;
	}
}

/* Forgets the bytes of the last refused write. */
static void refused_forget(struct tfs_framer *f)
{
	tfs_buf_release(&f->refused);
	f->refused_pos = 0;
}

/*
 * Recognises a re-send of the last refused write at the start of [b, n):
 * the bytes must match what is left of it, all of it or at least a page
 * (the kernel may cut the re-send elsewhere).  Returns the number of
 * bytes that match, 0 if none.
 */
static size_t refused_match(struct tfs_framer *f, const char *b, size_t n)
{
	size_t left = f->refused.len - f->refused_pos;
	size_t m = TFS_MIN(n, left);

	if (m == 0 || (m < left && m < 4096) ||
	    memcmp(b, f->refused.data + f->refused_pos, m))
		return 0;
	return m;
}

/*
 * Refuses the write [b, n) because of the too-long record that ends at
 * stop, held_start telling whether its start was accepted before.
 */
static void refuse_record(struct tfs_framer *f, const char *b,
			  const char *stop, bool held_start)
{
	bool ends_line = stop > b && stop[-1] == '\n';

	/* The held bytes belong to the refused record, or to a line this
	 * write would have completed: neither can be stored now. */
	tfs_buf_reset(&f->partial);
	refused_forget(f);
	tfs_buf_add(&f->refused, b, (size_t)(stop - b));
	f->refused_told = false;
	f->refused_line_ends = ends_line;
	f->dropping = held_start && !ends_line;
}

/*
 * Handles a write that may be a re-send of the refused one.  Returns
 * -EFBIG to refuse it, else 0 with [*b, *n) what is left to take.
 */
static int resend(struct tfs_framer *f, const char **b, size_t *n)
{
	size_t m = refused_match(f, *b, *n);

	if (m && !f->refused_told) {
		/* A re-send after a short count that hid our EFBIG (or a
		 * retry): refuse it, so the program hears. */
		f->refused_told = true;
		f->refused_pos = 0;
		return -EFBIG;
	}
	if (!m) {
		refused_forget(f);
		return 0;
	}
	/* A retry of a buffer whose failure was reported: the refused
	 * bytes go, the rest is new. */
	f->refused_pos += m;
	*b += m;
	*n -= m;
	f->dropping = false;
	if (f->refused_pos == f->refused.len) {
		f->skipping = !f->refused_line_ends;
		refused_forget(f);
	}
	return 0;
}

int tfs_framer_write(struct tfs_framer *f, const char *buf, size_t n,
		     size_t max, struct tfs_frame *out)
{
	const char *b = buf, *stop, *nl, *last;
	bool first;

	if (f->refused.len && resend(f, &b, &n))
		return -EFBIG;
	if (f->skipping) {
		/* The rest of a re-sent refused record, up to its '\n'. */
		nl = memchr(b, '\n', n);
		if (!nl)
			return TFS_FRAME_HOLD;
		n -= (size_t)(nl + 1 - b);
		b = nl + 1;
		f->skipping = false;
	}
	if (f->dropping) {
		/* The rest of a line refused with EFBIG: refused too, up to
		 * and including the write that ends it.  This write's first
		 * piece is refused, so the program hears of it. */
		nl = memchr(b, '\n', n);
		if (nl) {
			f->dropping = false;
			refused_forget(f);
			tfs_buf_add(&f->refused, b, (size_t)(nl + 1 - b));
			f->refused_told = true;
			f->refused_line_ends = true;
		}
		return -EFBIG;
	}
	stop = too_long(f->partial.len, b, n, max, &first);
	if (stop) {
		refuse_record(f, b, stop, first && f->partial.len);
		return -EFBIG;
	}
	last = memrchr(b, '\n', n);
	if (!last) {
		tfs_buf_add(&f->partial, b, n);
		return TFS_FRAME_HOLD;
	}
	size_t whole = (size_t)(last + 1 - b);

	out->iovcnt = 0;
	if (f->partial.len)
		out->iov[out->iovcnt++] =
			(struct iovec){ f->partial.data, f->partial.len };
	out->iov[out->iovcnt++] = (struct iovec){ (void *)b, whole };
	out->rest = last + 1;
	out->rest_len = n - whole;
	return TFS_FRAME_BATCH;
}

void tfs_framer_commit(struct tfs_framer *f, const struct tfs_frame *fr)
{
	tfs_buf_reset(&f->partial);
	tfs_buf_add(&f->partial, fr->rest, fr->rest_len);
}

bool tfs_framer_close_line(struct tfs_framer *f, struct tfs_frame *out)
{
	if (f->partial.len == 0)
		return false;
	tfs_buf_add(&f->partial, "\n", 1);
	out->iov[0] = (struct iovec){ f->partial.data, f->partial.len };
	out->iovcnt = 1;
	out->rest = NULL;
	out->rest_len = 0;
	return true;
}

void tfs_framer_close_done(struct tfs_framer *f, bool appended)
{
	if (appended)
		tfs_buf_reset(&f->partial);
	else if (f->partial.len)
		/* Keep it for a later attempt (at release). */
		f->partial.data[--f->partial.len] = '\0';
}
