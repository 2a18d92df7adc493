/*
 * writer - appends self-checking records (records.h) to a file in chunks
 * of random sizes, so lines are split across write() calls and one write
 * carries many lines: the producer of the end-to-end tests.
 *
 *   writer [options] FILE WRITER_ID COUNT
 *
 *   -k K        fsync after every K completed records, then print the
 *               sequence number of the last record the fsync covers on a
 *               line of stdout (flushed), so a test that kills the daemon
 *               knows what must survive
 *   -c MIN      smallest write, in bytes (default 1)
 *   -C MAX      largest write, in bytes (default 300 KiB); sizes are drawn
 *               log-uniformly between the two
 *   -l MIN      shortest line, bytes (default 40)
 *   -L MAX      longest line, bytes (default 16 KiB); log-uniform too
 *   -s SEED     random seed (default: the writer id)
 *   -S FIRST    first sequence number (default 0)
 *   -u USEC     sleep this long between writes (default 0)
 *   -a ACKLOG   acknowledgement log (for writers whose writes may fail, as
 *               in a cluster under faults): every write() then carries
 *               whole records only (at least one, as many as fit in the
 *               drawn size), and after each one a line is appended to
 *               ACKLOG with write(2), so it is there even if the writer
 *               is killed:
 *                 ok FIRST LAST          write() returned success
 *                 err FIRST LAST ENAME   write() failed (errno name):
 *                                        these records may or may not
 *                                        have been committed
 *               Keep ACKLOG outside the mount under test.
 *   -e          with -a: after a failed write, log it, pause (USEC, or
 *               100 ms), and go on with the next sequence numbers; the
 *               failed records are never sent again.  Exits 0 however
 *               many writes failed, unless the file is gone (ENOTCONN,
 *               EBADF: a killed daemon's mount), which ends it with 1.
 *   -t STOP     once the file STOP exists, finish the records already
 *               begun and stop (COUNT is then only an upper bound)
 *
 * The file is opened O_WRONLY|O_APPEND once and closed at the end.  Every
 * write() must write all its bytes (a short count is retried with the
 * rest).  Exits 0 when all COUNT records were written (and, with -k, the
 * last ones fsynced), 1 with a message naming the errno otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "records.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state += 0x9e3779b97f4a7c15ull;
	return rec_mix(rng_state);
}

/* Log-uniform in [lo, hi]. */
static size_t rnd_size(size_t lo, size_t hi)
{
	if (hi <= lo)
		return lo;
	double u = (double)(rnd() >> 11) / (double)(1ull << 53);
	double v = exp(log((double)lo) + u * (log((double)hi + 1) -
					       log((double)lo)));
	size_t n = (size_t)v;

	return n < lo ? lo : n > hi ? hi : n;
}

static void usage(void)
{
	fprintf(stderr, "usage: writer [-k K] [-c MIN] [-C MAX] [-l MIN] "
			"[-L MAX] [-s SEED] [-S FIRST] [-u USEC] "
			"[-a ACKLOG [-e]] [-t STOP] FILE WRITER_ID COUNT\n");
	exit(2);
}

/* The settings of the acknowledged mode (-a). */
struct acked {
	const char *stop;
	int fd, keep_going;
	unsigned long long id, first, count, usec;
	size_t cmin, cmax, lmin, lmax;
};

static int stop_requested(const char *stop)
{
	return stop && access(stop, F_OK) == 0;
}

/* Appends one line to the acknowledgement log; failing that is fatal,
 * since the log is what the test trusts. */
static void ack_line(int fd, const char *fmt, unsigned long long a,
		     unsigned long long b, const char *name)
{
	char line[128];
	int n = snprintf(line, sizeof(line), fmt, a, b, name);

	if (n <= 0 || write(fd, line, (size_t)n) != n) {
		perror("writer: acknowledgement log");
		exit(1);
	}
}

/*
 * The acknowledged mode: whole records per write(), each outcome logged.
 * Returns the exit status.
 */
static int run_acked(int fd, struct acked *k)
{
	unsigned long long seq = k->first, end = k->first + k->count;
	size_t pending = 0;		/* a drawn length not yet used */
	size_t cap = 0;
	char *buf = NULL;

	while (seq < end && !stop_requested(k->stop)) {
		size_t chunk = rnd_size(k->cmin, k->cmax), blen = 0;
		unsigned long long from = seq;

		/* At least one record, then as many as fit in the chunk. */
		do {
			size_t len = pending ? pending
					     : rnd_size(k->lmin, k->lmax);

			pending = 0;
			if (blen && blen + len > chunk) {
				pending = len;
				break;
			}
			if (blen + len > cap) {
				cap = (blen + len) * 2;
				buf = realloc(buf, cap);
				if (!buf) {
					perror("writer: realloc");
					return 1;
				}
			}
			rec_format(k->id, seq++, len, buf + blen);
			blen += len;
		} while (seq < end);

		size_t off = 0;
		int err = 0;
		while (off < blen) {
			ssize_t w = write(fd, buf + off, blen - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				err = errno;
				break;
			}
			off += (size_t)w;
		}
		if (!err) {
			ack_line(k->fd, "ok %llu %llu%s\n", from, seq - 1, "");
		} else {
			const char *name = strerrorname_np(err);

			ack_line(k->fd, "err %llu %llu %s\n", from, seq - 1,
				 name ? name : "?");
			if (!k->keep_going || err == ENOTCONN ||
			    err == ECONNABORTED || err == EBADF) {
				fprintf(stderr, "writer %llu: write of records "
						"%llu-%llu: %s\n",
					k->id, from, seq - 1, strerror(err));
				free(buf);
				return 1;
			}
			usleep(k->usec ? (useconds_t)k->usec : 100000);
			continue;
		}
		if (k->usec)
			usleep((useconds_t)k->usec);
	}
	free(buf);
	if (close(fd) < 0) {
		fprintf(stderr, "writer %llu: close: %s\n", k->id,
			strerror(errno));
		return 1;
	}
	return 0;
}

static unsigned long long num(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (*end == 'K' || *end == 'k')
		v <<= 10, end++;
	else if (*end == 'M' || *end == 'm')
		v <<= 20, end++;
	if (*end || end == s)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	size_t cmin = 1, cmax = 300 << 10, lmin = 40, lmax = 16 << 10;
	unsigned long long k = 0, seed = 0, first = 0, usec = 0;
	const char *acklog = NULL, *stop = NULL;
	int seed_set = 0, keep_going = 0, c;

	while ((c = getopt(argc, argv, "k:c:C:l:L:s:S:u:a:et:")) != -1) {
		switch (c) {
		case 'k': k = num(optarg); break;
		case 'c': cmin = num(optarg); break;
		case 'C': cmax = num(optarg); break;
		case 'l': lmin = num(optarg); break;
		case 'L': lmax = num(optarg); break;
		case 's': seed = num(optarg); seed_set = 1; break;
		case 'S': first = num(optarg); break;
		case 'u': usec = num(optarg); break;
		case 'a': acklog = optarg; break;
		case 'e': keep_going = 1; break;
		case 't': stop = optarg; break;
		default: usage();
		}
	}
	if (argc - optind != 3)
		usage();
	const char *path = argv[optind];
	unsigned long long id = num(argv[optind + 1]);
	unsigned long long count = num(argv[optind + 2]);

	if (cmin < 1 || cmax < cmin || lmax < lmin || (keep_going && !acklog) ||
	    (acklog && k))
		usage();
	if (lmin < REC_HEADER_MAX)
		lmin = REC_HEADER_MAX;
	if (lmax < lmin)
		lmax = lmin;
	rec_crc_init();
	rng_state = seed_set ? seed : id * 7919 + 1;

	int fd = open(path, O_WRONLY | O_APPEND);
	if (fd < 0) {
		fprintf(stderr, "writer %llu: open %s: %s\n", id, path,
			strerror(errno));
		return 1;
	}
	if (acklog) {
		struct acked a = {
			.stop = stop, .keep_going = keep_going,
			.id = id, .first = first, .count = count,
			.usec = usec, .cmin = cmin, .cmax = cmax,
			.lmin = lmin, .lmax = lmax,
		};

		a.fd = open(acklog, O_WRONLY | O_APPEND | O_CREAT, 0644);
		if (a.fd < 0) {
			fprintf(stderr, "writer %llu: open %s: %s\n", id,
				acklog, strerror(errno));
			return 1;
		}
		return run_acked(fd, &a);
	}

	unsigned long long written = 0;	/* stream bytes written */
	unsigned long long done = 0;	/* records completed by writes */
	unsigned long long synced = 0;	/* records covered by an fsync */
	unsigned long long generated = 0;
	/* A window of records: generate ahead of the next write. */
	char *buf = NULL;
	size_t blen = 0, bcap = 0;	/* bytes generated, not yet written */
	unsigned long long *ends = calloc(count + 1, sizeof(*ends));
	unsigned long long genpos = 0;

	if (!ends) {
		perror("writer: calloc");
		return 1;
	}
	while (done < count) {
		size_t chunk = rnd_size(cmin, cmax);

		/* Asked to stop: generate nothing more, but write out what
		 * was generated, so that no record is left torn. */
		if (generated < count && stop_requested(stop))
			count = generated;
		if (done == count)
			break;

		/* Generate records until the chunk is covered (or all are). */
		while (blen < chunk && generated < count) {
			size_t len = rnd_size(lmin, lmax);

			if (blen + len > bcap) {
				bcap = (blen + len) * 2;
				buf = realloc(buf, bcap);
				if (!buf) {
					perror("writer: realloc");
					return 1;
				}
			}
			rec_format(id, first + generated, len, buf + blen);
			blen += len;
			genpos += len;
			ends[generated++] = genpos;
		}
		if (chunk > blen)
			chunk = blen;
		size_t off = 0;
		while (off < chunk) {
			ssize_t w = write(fd, buf + off, chunk - off);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				fprintf(stderr,
					"writer %llu: write of %zu bytes at "
					"record %llu: %s\n",
					id, chunk - off, first + done,
					strerror(errno));
				return 1;
			}
			off += (size_t)w;
		}
		memmove(buf, buf + chunk, blen - chunk);
		blen -= chunk;
		written += chunk;
		while (done < generated && ends[done] <= written)
			done++;
		if (k && done >= synced + k) {
			if (fsync(fd) < 0) {
				fprintf(stderr, "writer %llu: fsync: %s\n", id,
					strerror(errno));
				return 1;
			}
			synced = done;
			printf("%llu\n", first + synced - 1);
			fflush(stdout);
		}
		if (usec)
			usleep((useconds_t)usec);
	}
	if (k && synced < done) {
		if (fsync(fd) < 0) {
			fprintf(stderr, "writer %llu: fsync: %s\n", id,
				strerror(errno));
			return 1;
		}
		printf("%llu\n", first + done - 1);
		fflush(stdout);
	}
	if (close(fd) < 0) {
		fprintf(stderr, "writer %llu: close: %s\n", id,
			strerror(errno));
		return 1;
	}
	free(buf);
	free(ends);
	return 0;
}
