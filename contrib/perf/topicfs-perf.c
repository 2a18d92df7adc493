/*
 * topicfs-perf - a load generator and checker for logs kept in files.
 *
 * It plays the part Kafka's kafka-producer-perf-test and
 * kafka-consumer-perf-test play for Kafka, but through the plain file
 * interface, so the same command measures topicfs, the native file system,
 * a FUSE pass-through or anything else that can be mounted.  It links only
 * against libc, pthread and libm: it must build and run where the topicfs
 * libraries do not.
 *
 * MODES
 *
 *   produce   W writer threads, each with its own O_WRONLY|O_APPEND|O_CREAT
 *             descriptor, append N records to one file in writes of whole
 *             records, optionally calling fsync every K records or B bytes
 *             and optionally paced to a rate.
 *   consume   reads a file sequentially with a given read size; or, with
 *             --follow, F follower threads read a growing file and measure
 *             how long each record took to reach them (see LATENCY).
 *   verify    reads a file and checks that every line is an intact record
 *             and that each writer's sequence numbers run without gaps,
 *             duplicates or reordering.
 *
 * RECORD FORMAT
 *
 * A record is one line of printable ASCII, record_size bytes long including
 * its final '\n' (at least REC_MIN bytes):
 *
 *   offset  length  content
 *        0       4  "tp1 "                 magic and format version
 *        4       4  writer id, lower-case hex, 0000..ffff
 *        8       1  ' '
 *        9      12  sequence number of this record for its writer, hex
 *       21       1  ' '
 *       22      16  CLOCK_MONOTONIC nanoseconds, hex, taken just before the
 *                   write() that carried the record
 *       38       1  ' '
 *       39  size-40 padding: pad[i] = PAD_ALPHABET[(i + writer) % 64]
 *   size-1       1  '\n'
 *
 * The padding depends only on the writer and the position, so a record cut,
 * shifted or overlaid by another shows up as a padding mismatch; lost,
 * duplicated or reordered records show up in the sequence numbers.  Every
 * writer numbers its own records from --start-seq (default 0), so several
 * writers, threads or processes (use distinct --writer-id ranges) can share
 * a file and still be checked.  The stamp lets a reader in another process
 * on the same machine compute latency without talking to the writer.
 *
 * COST OF MAKING RECORDS
 *
 * A writer formats its buffer of records once; before each write() it only
 * rewrites the sequence digits of each record and copies one preformatted
 * stamp into each.  That costs a few nanoseconds per record, which matters
 * next to a page-cache write at 1.5 GB/s, so the time spent is measured and
 * reported as gen_seconds rather than hidden in the rate.
 *
 * LATENCY
 *
 * Latencies go into per-thread log-linear histograms (128 sub-buckets per
 * power of two, under 0.8% error; values in nanoseconds up to about 39
 * hours), merged at the end, so memory does not grow with the number of
 * operations.  Percentiles are read from the merged histogram; max is
 * exact.  Rate-limited runs measure each write() from its actual start,
 * not its scheduled start.
 *
 * For consume --follow --append-to FILE, one producer thread in this
 * process appends records and publishes, for each sequence number, the
 * CLOCK_MONOTONIC time at which its write() returned.  Each follower takes
 * the time at which its read() returned and, for every record in that
 * read, records read_return - write_return (0 when the read returned
 * first: the data was visible before the writer was told).  When the
 * follower gets a record before the producer has published its time, it
 * keeps (seq, time) aside and settles it after the run, so nobody spins.
 * "all" latency is, per record, the time until the last follower had it.
 * Without --append-to the records come from another process and latency
 * is measured from the stamp in the record (the write() call).
 *
 * A follower waits at the end of the file in one of three ways: "block"
 * (the read itself blocks, as on topicfs's .follow files; a read returning
 * 0 is then an error), "inotify" (wait for IN_MODIFY; works on local file
 * systems and on FUSE for writes made through the same mount) or "poll"
 * (sleep and retry).
 *
 * Exit status: 0 success, 1 failure (I/O error, verification failure,
 * timeout), 2 usage error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PERF_VERSION "1"
#define MiB (1024ull * 1024)

#define REC_MAGIC "tp1 "
#define REC_OFF_WRITER 4
#define REC_OFF_SEQ 9
#define REC_OFF_STAMP 22
#define REC_OFF_PAD 39
#define REC_MIN 40
#define REC_MAX (64 * MiB)
#define REC_SEQ_DIGITS 12
#define REC_SEQ_MAX ((1ull << 48) - 1)
#define MAX_WRITERS 65536u

static const char PAD_ALPHABET[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char HEX[] = "0123456789abcdef";

/* Set by SIGINT/SIGTERM and when --duration runs out; threads poll it. */
static atomic_int g_stop;
/* Set by SIGINT/SIGTERM only: the run is incomplete and exits with 1. */
static atomic_int g_signalled;

/* ---- small helpers ---- */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
						       noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("topicfs-perf: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("topicfs-perf: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'topicfs-perf --help'.\n", stderr);
	exit(2);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ull),
			       .tv_nsec = (long)(t % 1000000000ull) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR && !atomic_load(&g_stop))
		;
}

static void put_hex(char *p, uint64_t v, int digits)
{
	for (int i = digits - 1; i >= 0; i--) {
		p[i] = HEX[v & 15];
		v >>= 4;
	}
}

/* Returns 0 and the value, or -1 when a character is not lower-case hex. */
static int get_hex(const char *p, int digits, uint64_t *out)
{
	uint64_t v = 0;

	for (int i = 0; i < digits; i++) {
		unsigned char c = (unsigned char)p[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return -1;
		v = (v << 4) | d;
	}
	*out = v;
	return 0;
}

/*
 * Parses an unsigned number with an optional suffix.  Sizes (binary) take
 * K, M, G, T as powers of 1024, with optional "i"/"B" ("128K", "128KiB",
 * "1MB" all mean 1024-multiples); counts take k, M, G as powers of 1000.
 * Returns 0, or -EINVAL / -ERANGE.
 */
static int parse_num(const char *s, bool binary, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1, base = binary ? 1024 : 1000;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		mul = base;
		end++;
		break;
	case 'm': case 'M':
		mul = base * base;
		end++;
		break;
	case 'g': case 'G':
		mul = base * base * base;
		end++;
		break;
	case 't': case 'T':
		mul = base * base * base * base;
		end++;
		break;
	default:
		if (binary && (*end == 'b' || *end == 'B') && end[1] == '\0')
			end++;
		break;
	}
	if (binary && *end == 'i')
		end++;
	if (binary && (*end == 'B' || *end == 'b'))
		end++;
	if (*end != '\0')
		return -EINVAL;
	if (mul > 1 && v > UINT64_MAX / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

static double parse_seconds(const char *opt, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || v < 0 || !isfinite(v))
		usage_error("%s: '%s' is not a number of seconds", opt, s);
	if (*end == 's' && end[1] == '\0')
		return v;
	if (strcmp(end, "ms") == 0)
		return v / 1000;
	if (*end != '\0')
		usage_error("%s: '%s' is not a number of seconds", opt, s);
	return v;
}

static uint64_t opt_num(const char *opt, const char *s, bool binary,
			uint64_t min, uint64_t max)
{
	uint64_t v;
	int rc = parse_num(s, binary, &v);

	if (rc == -ERANGE || (rc == 0 && (v < min || v > max)))
		usage_error("%s: %s is out of range (%" PRIu64 "..%" PRIu64 ")",
			    opt, s, min, max);
	if (rc)
		usage_error("%s: '%s' is not a %s", opt, s,
			    binary ? "size (like 200, 128K, 1MiB, 1G)" :
				     "count (like 1000, 50k, 2M)");
	return v;
}

/* Writes all of buf; returns 0 or -errno.  *shorts counts short writes. */
static int write_all(int fd, const char *buf, size_t len, uint64_t *shorts)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		if ((size_t)n < len)
			(*shorts)++;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- latency histogram ---- */

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_SHIFT 39
#define HIST_BUCKETS ((HIST_MAX_SHIFT + 2) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t sum;		/* nanoseconds, for the mean */
	uint64_t min, max;
	uint64_t b[HIST_BUCKETS];
};

static void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static unsigned hist_index(uint64_t v)
{
	unsigned e, shift;

	if (v < HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	shift = e - HIST_SUB_BITS;
	if (shift > HIST_MAX_SHIFT)
		return HIST_BUCKETS - 1;
	return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* The lowest value that falls into bucket i, and the one past its top. */
static void hist_bounds(unsigned i, uint64_t *lo, uint64_t *hi)
{
	unsigned shift;
	uint64_t mant;

	if (i < HIST_SUB) {
		*lo = i;
		*hi = i + 1ull;
		return;
	}
	shift = i / HIST_SUB - 1;
	mant = i - (uint64_t)shift * HIST_SUB;
	*lo = mant << shift;
	*hi = (mant + 1) << shift;
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

static void hist_merge(struct hist *to, const struct hist *from)
{
	if (!from->count)
		return;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		to->b[i] += from->b[i];
	to->count += from->count;
	to->sum += from->sum;
	if (from->min < to->min)
		to->min = from->min;
	if (from->max > to->max)
		to->max = from->max;
}

/* The value at percentile p (0 < p <= 100), in nanoseconds. */
static uint64_t hist_pct(const struct hist *h, double p)
{
	uint64_t rank, seen = 0, lo, hi, v;

	if (!h->count)
		return 0;
	if (p >= 100)
		return h->max;
	rank = (uint64_t)ceil(p / 100 * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen < rank)
			continue;
		hist_bounds(i, &lo, &hi);
		v = lo + (hi - lo - 1) / 2;
		if (v < h->min)
			v = h->min;
		if (v > h->max)
			v = h->max;
		return v;
	}
	return h->max;
}

/* ---- JSON output ---- */

struct json {
	FILE *f;
	int depth;
	bool comma[16];
};

static void j_str_raw(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void j_key(struct json *j, const char *k)
{
	if (j->comma[j->depth])
		fputc(',', j->f);
	j->comma[j->depth] = true;
	if (k) {
		j_str_raw(j->f, k);
		fputc(':', j->f);
	}
}

static void j_open(struct json *j, const char *k, char c)
{
	if (j->depth > 0)
		j_key(j, k);
	fputc(c, j->f);
	j->comma[++j->depth] = false;
}

static void j_close(struct json *j, char c)
{
	j->depth--;
	fputc(c, j->f);
	if (j->depth == 0)
		fputc('\n', j->f);
}

static void j_u64(struct json *j, const char *k, uint64_t v)
{
	j_key(j, k);
	fprintf(j->f, "%" PRIu64, v);
}

static void j_dbl(struct json *j, const char *k, double v, int prec)
{
	j_key(j, k);
	if (isfinite(v))
		fprintf(j->f, "%.*f", prec, v);
	else
		fputs("null", j->f);
}

static void j_str(struct json *j, const char *k, const char *s)
{
	j_key(j, k);
	if (s)
		j_str_raw(j->f, s);
	else
		fputs("null", j->f);
}

static void j_bool(struct json *j, const char *k, bool v)
{
	j_key(j, k);
	fputs(v ? "true" : "false", j->f);
}

static const double SPECTRUM[] = { 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9,
				   99.95, 99.99, 100 };

static void j_hist(struct json *j, const char *k, const struct hist *h)
{
	j_open(j, k, '{');
	j_u64(j, "count", h->count);
	j_dbl(j, "min", h->count ? h->min / 1e3 : 0, 3);
	j_dbl(j, "mean", h->count ? (double)h->sum / h->count / 1e3 : 0, 3);
	j_dbl(j, "p50", hist_pct(h, 50) / 1e3, 3);
	j_dbl(j, "p90", hist_pct(h, 90) / 1e3, 3);
	j_dbl(j, "p99", hist_pct(h, 99) / 1e3, 3);
	j_dbl(j, "p99_9", hist_pct(h, 99.9) / 1e3, 3);
	j_dbl(j, "max", h->max / 1e3, 3);
	j_open(j, "spectrum", '[');
	for (size_t i = 0; i < sizeof(SPECTRUM) / sizeof(SPECTRUM[0]); i++) {
		j_open(j, NULL, '[');
		j_dbl(j, NULL, SPECTRUM[i], 2);
		j_dbl(j, NULL, hist_pct(h, SPECTRUM[i]) / 1e3, 3);
		j_close(j, ']');
	}
	j_close(j, ']');
	j_close(j, '}');
}

static void print_hist(const char *what, const struct hist *h)
{
	if (!h->count)
		return;
	printf("  %-18s us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  "
	       "max %.1f  (%" PRIu64 " samples)\n", what,
	       hist_pct(h, 50) / 1e3, hist_pct(h, 90) / 1e3,
	       hist_pct(h, 99) / 1e3, hist_pct(h, 99.9) / 1e3, h->max / 1e3,
	       h->count);
}

/* ---- configuration ---- */

enum mode { M_PRODUCE = 1, M_CONSUME = 2, M_VERIFY = 4 };
enum wait_mode { WAIT_BLOCK, WAIT_INOTIFY, WAIT_POLL };

struct cfg {
	enum mode mode;
	const char *path;
	const char *append_to;		/* follow: our own producer */
	uint64_t records;
	uint64_t bytes;
	uint64_t record_size;
	uint64_t write_size;
	uint64_t read_size;
	uint64_t limit;
	unsigned writers;
	unsigned writer_id;
	uint64_t start_seq;
	uint64_t fsync_records, fsync_bytes;
	bool fdatasync;
	double rate;			/* records/s in all, 0 = no limit */
	double duration;		/* stop after, 0 = no limit */
	double timeout;			/* follow: fail after */
	double warmup;			/* follow: producer delay */
	bool follow;
	unsigned followers;
	enum wait_mode wait;
	uint64_t poll_ns;
	uint64_t expect_records;
	unsigned expect_writers;
	bool allow_foreign;
	bool json, quiet;
	bool set_records, set_bytes, set_write_size, set_rate, set_rsize;
};

/* ---- progress and thread coordination ---- */

/* Counters a thread bumps and the progress line reads; one cache line each. */
struct counters {
	_Atomic uint64_t records;
	_Atomic uint64_t bytes;
} __attribute__((aligned(64)));

struct run {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned running;		/* threads not finished; under mu */
	pthread_barrier_t go;
	uint64_t t_start;
	struct counters *cnt;		/* one per thread */
	unsigned ncnt;
};

static void run_init(struct run *r, unsigned nthreads, struct counters *cnt,
		     unsigned ncnt)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	r->running = nthreads;
	/* The main thread joins the barrier too, then starts the clock. */
	pthread_barrier_init(&r->go, NULL, nthreads + 1);
	r->cnt = cnt;
	r->ncnt = ncnt;
}

static void run_thread_done(struct run *r)
{
	pthread_mutex_lock(&r->mu);
	r->running--;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void progress_line(const char *label, struct run *r, uint64_t now,
			  uint64_t *prev_rec, uint64_t *prev_bytes,
			  uint64_t *prev_t, bool final)
{
	uint64_t rec = 0, bytes = 0;
	double dt = (now - *prev_t) / 1e9;

	for (unsigned i = 0; i < r->ncnt; i++) {
		rec += atomic_load_explicit(&r->cnt[i].records,
					    memory_order_relaxed);
		bytes += atomic_load_explicit(&r->cnt[i].bytes,
					      memory_order_relaxed);
	}
	if (dt <= 0)
		dt = 1e-9;
	fprintf(stderr, "%s%s %6.1f s  %12" PRIu64 " records  %10.0f rec/s  "
		"%9.1f MB/s%s", isatty(2) ? "\r" : "", label,
		(now - r->t_start) / 1e9, rec, (rec - *prev_rec) / dt,
		(bytes - *prev_bytes) / dt / 1e6,
		isatty(2) && !final ? "" : "\n");
	*prev_rec = rec;
	*prev_bytes = bytes;
	*prev_t = now;
}

/*
 * Waits for the threads of r, printing a progress line every second unless
 * quiet.  After duration seconds (0 = never) it sets g_stop and keeps
 * waiting for the threads to wind down.  Returns 0 when all finished,
 * -ETIMEDOUT when timeout seconds passed (0 = never) or -EINTR when
 * interrupted and the threads did not finish within 2 s.
 */
static int run_wait(struct run *r, const char *label, bool quiet,
		    double duration, double timeout)
{
	uint64_t prev_rec = 0, prev_bytes = 0, prev_t = r->t_start;
	uint64_t next_tick = r->t_start + 1000000000ull;
	uint64_t stop_at = duration > 0 ?
		r->t_start + (uint64_t)(duration * 1e9) : UINT64_MAX;
	uint64_t fail_at = timeout > 0 ?
		r->t_start + (uint64_t)(timeout * 1e9) : UINT64_MAX;
	uint64_t intr_at = UINT64_MAX;
	int rc = 0;

	pthread_mutex_lock(&r->mu);
	while (r->running > 0) {
		uint64_t now = now_ns(), wake = next_tick;
		struct timespec ts;

		if (now >= fail_at) {
			rc = -ETIMEDOUT;
			break;
		}
		if (now >= stop_at && !atomic_load(&g_stop))
			atomic_store(&g_stop, 1);
		if (atomic_load(&g_stop) && intr_at == UINT64_MAX &&
		    now < stop_at)
			intr_at = now + 2000000000ull;
		if (now >= intr_at) {
			rc = -EINTR;
			break;
		}
		if (now >= next_tick) {
			if (!quiet)
				progress_line(label, r, now, &prev_rec,
					      &prev_bytes, &prev_t, false);
			next_tick += 1000000000ull;
			continue;
		}
		if (stop_at < wake && !atomic_load(&g_stop))
			wake = stop_at;
		if (fail_at < wake)
			wake = fail_at;
		if (intr_at < wake)
			wake = intr_at;
		ts.tv_sec = (time_t)(wake / 1000000000ull);
		ts.tv_nsec = (long)(wake % 1000000000ull);
		pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	}
	pthread_mutex_unlock(&r->mu);
	if (!quiet && prev_t != r->t_start)
		progress_line(label, r, now_ns(), &prev_rec, &prev_bytes,
			      &prev_t, true);
	return rc;
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&g_signalled, 1);
	atomic_store(&g_stop, 1);
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static void start_thread(pthread_t *th, void *(*fn)(void *), void *arg)
{
	int rc = pthread_create(th, NULL, fn, arg);

	if (rc)
		die("cannot start a thread: %s", strerror(rc));
}

/* ---- records ---- */

/* Formats a whole record for writer w with sequence 0 and stamp 0. */
static void rec_format(char *p, size_t size, unsigned w)
{
	memcpy(p, REC_MAGIC, 4);
	put_hex(p + REC_OFF_WRITER, w, 4);
	p[REC_OFF_SEQ - 1] = ' ';
	put_hex(p + REC_OFF_SEQ, 0, REC_SEQ_DIGITS);
	p[REC_OFF_STAMP - 1] = ' ';
	put_hex(p + REC_OFF_STAMP, 0, 16);
	p[REC_OFF_PAD - 1] = ' ';
	for (size_t i = 0; i + REC_OFF_PAD < size - 1; i++)
		p[REC_OFF_PAD + i] = PAD_ALPHABET[(i + w) % 64];
	p[size - 1] = '\n';
}

enum rec_err {
	REC_OK,
	REC_FOREIGN,		/* not a topicfs-perf record at all */
	REC_BAD_HEADER,		/* our magic, damaged fields */
	REC_BAD_PAD,		/* padding mismatch: torn or overlaid */
};

static const char *const rec_err_str[] = {
	[REC_OK] = "ok",
	[REC_FOREIGN] = "not a topicfs-perf record",
	[REC_BAD_HEADER] = "damaged record header",
	[REC_BAD_PAD] = "damaged record body (padding mismatch)",
};

/* A buffer of the repeating padding alphabet, grown to the longest line. */
struct padref {
	char *buf;
	size_t len;
};

static const char *padref_get(struct padref *pr, size_t need)
{
	if (pr->len < need + 64) {
		size_t n = need + 64;

		pr->buf = xrealloc(pr->buf, n);
		for (size_t i = 0; i < n; i++)
			pr->buf[i] = PAD_ALPHABET[i % 64];
		pr->len = n;
	}
	return pr->buf;
}

/*
 * Parses one line of len bytes (its '\n' included).  When pr is NULL the
 * padding is not checked (followers only need the header).
 */
static enum rec_err rec_parse(const char *p, size_t len, struct padref *pr,
			      unsigned *w, uint64_t *seq, uint64_t *stamp)
{
	uint64_t wv;

	if (len < REC_MIN || memcmp(p, REC_MAGIC, 4) != 0)
		return REC_FOREIGN;
	if (p[REC_OFF_SEQ - 1] != ' ' || p[REC_OFF_STAMP - 1] != ' ' ||
	    p[REC_OFF_PAD - 1] != ' ' ||
	    get_hex(p + REC_OFF_WRITER, 4, &wv) ||
	    get_hex(p + REC_OFF_SEQ, REC_SEQ_DIGITS, seq) ||
	    get_hex(p + REC_OFF_STAMP, 16, stamp))
		return REC_BAD_HEADER;
	*w = (unsigned)wv;
	if (pr) {
		size_t padlen = len - 1 - REC_OFF_PAD;
		const char *ref = padref_get(pr, padlen);

		if (memcmp(p + REC_OFF_PAD, ref + wv % 64, padlen) != 0)
			return REC_BAD_PAD;
	}
	return REC_OK;
}

/* ---- produce ---- */

struct writer {
	const struct cfg *cfg;
	struct run *run;
	struct counters *cnt;
	unsigned id;			/* writer id stamped in records */
	int fd;
	uint64_t quota;			/* records to write */
	uint64_t seq0;
	double rate;			/* this writer's records/s */
	double delay;			/* seconds before first write */
	_Atomic uint64_t *pub;		/* follow: write-return times */
	struct hist wlat, slat;
	uint64_t records, bytes, writes, syncs, shorts, gen_ns;
	uint64_t t_end;
	int err;			/* -errno of the failed call, or 0 */
	const char *err_op;
};

static void *writer_main(void *arg)
{
	struct writer *wr = arg;
	const struct cfg *c = wr->cfg;
	size_t rs = c->record_size;
	uint64_t rpw = c->write_size / rs, seq = wr->seq0, left = wr->quota;
	uint64_t since_recs = 0, since_bytes = 0, i = 0, t_begin;
	uint64_t interval = 0;
	char *buf = xcalloc(rpw, rs);
	char stamp[16];

	for (uint64_t k = 0; k < rpw; k++)
		rec_format(buf + k * rs, rs, wr->id);
	if (wr->rate > 0)
		interval = (uint64_t)(1e9 * (double)rpw / wr->rate);
	pthread_barrier_wait(&wr->run->go);
	if (wr->delay > 0)
		sleep_until_ns(now_ns() + (uint64_t)(wr->delay * 1e9));
	t_begin = now_ns();

	while (left > 0 && !atomic_load_explicit(&g_stop,
						 memory_order_relaxed)) {
		uint64_t k = left < rpw ? left : rpw, t0, t1, t2;
		size_t len = k * rs;
		int rc;

		if (interval)
			sleep_until_ns(t_begin + i++ * interval);
		t0 = now_ns();
		put_hex(stamp, t0, 16);
		for (uint64_t r = 0; r < k; r++) {
			char *p = buf + r * rs;

			put_hex(p + REC_OFF_SEQ, seq + r, REC_SEQ_DIGITS);
			memcpy(p + REC_OFF_STAMP, stamp, 16);
		}
		t1 = now_ns();
		rc = write_all(wr->fd, buf, len, &wr->shorts);
		t2 = now_ns();
		if (rc) {
			wr->err = rc;
			wr->err_op = "write";
			break;
		}
		if (wr->pub)
			for (uint64_t r = 0; r < k; r++)
				atomic_store_explicit(&wr->pub[seq + r -
							       wr->seq0],
						      t2,
						      memory_order_release);
		wr->gen_ns += t1 - t0;
		hist_add(&wr->wlat, t2 - t1);
		wr->writes++;
		wr->records += k;
		wr->bytes += len;
		seq += k;
		left -= k;
		atomic_fetch_add_explicit(&wr->cnt->records, k,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&wr->cnt->bytes, len,
					  memory_order_relaxed);
		since_recs += k;
		since_bytes += len;
		if ((c->fsync_records && since_recs >= c->fsync_records) ||
		    (c->fsync_bytes && since_bytes >= c->fsync_bytes)) {
			rc = c->fdatasync ? fdatasync(wr->fd) : fsync(wr->fd);
			t1 = now_ns();
			if (rc) {
				wr->err = -errno;
				wr->err_op = c->fdatasync ? "fdatasync" :
							    "fsync";
				break;
			}
			hist_add(&wr->slat, t1 - t2);
			wr->syncs++;
			since_recs = since_bytes = 0;
		}
	}
	wr->t_end = now_ns();
	free(buf);
	run_thread_done(wr->run);
	return NULL;
}

static int open_append(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		die("cannot open %s for appending: %s", path, strerror(errno));
	return fd;
}

/* Checks and completes the producer settings shared by produce and follow. */
static void producer_settings(struct cfg *c)
{
	if (c->record_size < REC_MIN || c->record_size > REC_MAX)
		usage_error("--record-size must be %d bytes to 64 MiB "
			    "(records carry a %d-byte header and a newline)",
			    REC_MIN, REC_OFF_PAD);
	if (!c->set_write_size)
		c->write_size = c->record_size;
	if (c->write_size < c->record_size)
		usage_error("--write-size %" PRIu64 " is smaller than one "
			    "record (%" PRIu64 " bytes): writes carry whole "
			    "records", c->write_size, c->record_size);
	if (c->write_size > REC_MAX)
		usage_error("--write-size is at most 64 MiB");
	if (c->set_bytes) {
		if (c->set_records)
			usage_error("give --records or --bytes, not both");
		c->records = c->bytes / c->record_size;
		if (!c->records)
			usage_error("--bytes %" PRIu64 " is less than one "
				    "record", c->bytes);
	}
	if (c->writers < 1 || c->writer_id + c->writers > MAX_WRITERS)
		usage_error("writer ids must fit in 0..65535 (--writer-id "
			    "%u, --writers %u)", c->writer_id, c->writers);
	if (c->start_seq + c->records / c->writers + 1 > REC_SEQ_MAX)
		usage_error("sequence numbers would pass 2^48");
}

static void writers_setup(const struct cfg *c, struct run *run,
			  struct writer *w, struct counters *cnt,
			  unsigned n, const char *path)
{
	for (unsigned i = 0; i < n; i++) {
		w[i].cfg = c;
		w[i].run = run;
		w[i].cnt = &cnt[i];
		w[i].id = c->writer_id + i;
		w[i].fd = open_append(path);
		w[i].quota = c->records / n + (i < c->records % n ? 1 : 0);
		w[i].seq0 = c->start_seq;
		w[i].rate = c->rate / n;
		hist_init(&w[i].wlat);
		hist_init(&w[i].slat);
	}
}

struct prod_sum {
	uint64_t records, bytes, writes, syncs, shorts, gen_ns, t_end;
	struct hist wlat, slat;
	int err;
	unsigned err_writer;
	const char *err_op;
};

static void writers_sum(struct writer *w, unsigned n, struct prod_sum *s)
{
	memset(s, 0, sizeof(*s));
	hist_init(&s->wlat);
	hist_init(&s->slat);
	for (unsigned i = 0; i < n; i++) {
		s->records += w[i].records;
		s->bytes += w[i].bytes;
		s->writes += w[i].writes;
		s->syncs += w[i].syncs;
		s->shorts += w[i].shorts;
		s->gen_ns += w[i].gen_ns;
		if (w[i].t_end > s->t_end)
			s->t_end = w[i].t_end;
		hist_merge(&s->wlat, &w[i].wlat);
		hist_merge(&s->slat, &w[i].slat);
		if (w[i].err && !s->err) {
			s->err = w[i].err;
			s->err_op = w[i].err_op;
			s->err_writer = w[i].id;
		}
		if (close(w[i].fd) && !s->err) {
			s->err = -errno;
			s->err_op = "close";
			s->err_writer = w[i].id;
		}
	}
}

static void j_settings(struct json *j, const struct cfg *c)
{
	j_str(j, "tool", "topicfs-perf");
	j_str(j, "version", PERF_VERSION);
}

static void j_producer_cfg(struct json *j, const struct cfg *c)
{
	uint64_t rpw = c->write_size / c->record_size;

	j_u64(j, "record_size", c->record_size);
	j_u64(j, "records_per_write", rpw);
	j_u64(j, "write_size", rpw * c->record_size);
	j_u64(j, "writers", c->writers);
	j_u64(j, "writer_id", c->writer_id);
	j_u64(j, "fsync_every_records", c->fsync_records);
	j_u64(j, "fsync_every_bytes", c->fsync_bytes);
	j_str(j, "sync_call", c->fdatasync ? "fdatasync" : "fsync");
	j_dbl(j, "rate_limit", c->rate, 1);
}

static void report_error(struct json *j, const struct cfg *c, const char *msg)
{
	if (c->json)
		j_str(j, "error", msg);
	fprintf(stderr, "topicfs-perf: %s\n", msg);
}

static int do_produce(struct cfg *c)
{
	struct writer *w;
	struct counters *cnt;
	struct run run;
	struct prod_sum s;
	struct json j = { .f = stdout };
	double secs;
	bool complete;
	char msg[512];
	int rc;

	producer_settings(c);
	w = xcalloc(c->writers, sizeof(*w));
	cnt = aligned_alloc(64, sizeof(*cnt) * c->writers);
	if (!cnt)
		die("out of memory");
	memset(cnt, 0, sizeof(*cnt) * c->writers);
	run_init(&run, c->writers, cnt, c->writers);
	writers_setup(c, &run, w, cnt, c->writers, c->path);

	pthread_t *th = xcalloc(c->writers, sizeof(*th));

	for (unsigned i = 0; i < c->writers; i++)
		start_thread(&th[i], writer_main, &w[i]);
	pthread_barrier_wait(&run.go);
	run.t_start = now_ns();
	rc = run_wait(&run, "produce", c->quiet, c->duration, 0);
	for (unsigned i = 0; i < c->writers; i++)
		pthread_join(th[i], NULL);
	writers_sum(w, c->writers, &s);
	secs = (s.t_end - run.t_start) / 1e9;
	complete = s.records == c->records;

	if (c->json) {
		j_open(&j, NULL, '{');
		j_settings(&j, c);
		j_str(&j, "mode", "produce");
		j_str(&j, "path", c->path);
		j_producer_cfg(&j, c);
		j_u64(&j, "records_requested", c->records);
		j_u64(&j, "records", s.records);
		j_u64(&j, "bytes", s.bytes);
		j_u64(&j, "writes", s.writes);
		j_u64(&j, "fsyncs", s.syncs);
		j_u64(&j, "short_writes", s.shorts);
		j_bool(&j, "complete", complete);
		j_dbl(&j, "seconds", secs, 6);
		j_dbl(&j, "gen_seconds", s.gen_ns / 1e9 / c->writers, 6);
		j_dbl(&j, "records_per_sec", s.records / secs, 1);
		j_dbl(&j, "mb_per_sec", s.bytes / secs / 1e6, 3);
		j_hist(&j, "write_latency_us", &s.wlat);
		j_hist(&j, "fsync_latency_us", &s.slat);
	} else {
		printf("produce %s: %" PRIu64 " records of %" PRIu64
		       " bytes, %" PRIu64 " per write, %u writer%s%s\n",
		       c->path, s.records, c->record_size,
		       c->write_size / c->record_size, c->writers,
		       c->writers == 1 ? "" : "s",
		       complete ? "" : " (stopped early)");
		printf("  %.3f s: %.0f records/s, %.1f MB/s, %" PRIu64
		       " writes (%.0f/s), %" PRIu64 " %s\n", secs,
		       s.records / secs, s.bytes / secs / 1e6, s.writes,
		       s.writes / secs, s.syncs,
		       c->fdatasync ? "fdatasyncs" : "fsyncs");
		print_hist("write()", &s.wlat);
		print_hist(c->fdatasync ? "fdatasync()" : "fsync()", &s.slat);
		printf("  record generation took %.3f s per writer\n",
		       s.gen_ns / 1e9 / c->writers);
		if (s.shorts)
			printf("  warning: %" PRIu64 " short writes (the rest "
			       "was written by a second call)\n", s.shorts);
	}
	rc = rc == -EINTR || atomic_load(&g_signalled) ? 1 : 0;
	if (rc && !s.err)
		report_error(&j, c, "interrupted");
	if (s.err) {
		snprintf(msg, sizeof(msg), "%s %s (writer %u): %s", s.err_op,
			 c->path, s.err_writer, strerror(-s.err));
		report_error(&j, c, msg);
		rc = 1;
	}
	if (c->json)
		j_close(&j, '}');
	free(th);
	free(w);
	free(cnt);
	return rc;
}

/* ---- consume: plain sequential read ---- */

struct reader {
	const struct cfg *cfg;
	struct run *run;
	struct counters *cnt;
	int fd;
	uint64_t bytes, reads, lines, t_end;
	struct hist rlat;
	int err;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	const struct cfg *c = rd->cfg;
	size_t rs = c->read_size;
	char *buf;
	bool count = !c->set_rsize;

	if (posix_memalign((void **)&buf, 4096, rs))
		die("out of memory (%zu bytes)", rs);
	pthread_barrier_wait(&rd->run->go);
	while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
		size_t want = rs;
		uint64_t t0, t1;
		ssize_t n;

		if (c->limit && c->limit - rd->bytes < want)
			want = c->limit - rd->bytes;
		if (!want)
			break;
		t0 = now_ns();
		n = read(rd->fd, buf, want);
		t1 = now_ns();
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rd->err = -errno;
			break;
		}
		if (n == 0)
			break;
		hist_add(&rd->rlat, t1 - t0);
		rd->reads++;
		rd->bytes += (uint64_t)n;
		if (count)
			for (const char *p = buf, *e = buf + n;
			     (p = memchr(p, '\n', (size_t)(e - p))); p++)
				rd->lines++;
		atomic_fetch_add_explicit(&rd->cnt->bytes, (uint64_t)n,
					  memory_order_relaxed);
		atomic_store_explicit(&rd->cnt->records, count ? rd->lines :
				      rd->bytes / c->record_size,
				      memory_order_relaxed);
	}
	rd->t_end = now_ns();
	free(buf);
	run_thread_done(rd->run);
	return NULL;
}

static int do_consume_plain(struct cfg *c)
{
	struct counters *cnt = aligned_alloc(64, sizeof(*cnt));
	struct reader rd = { .cfg = c };
	struct json j = { .f = stdout };
	struct run run;
	pthread_t th;
	uint64_t records;
	double secs;
	char msg[512];
	int rc;

	if (!cnt)
		die("out of memory");
	memset(cnt, 0, sizeof(*cnt));
	rd.fd = open(c->path, O_RDONLY | O_CLOEXEC);
	if (rd.fd < 0)
		die("cannot open %s for reading: %s", c->path,
		    strerror(errno));
	run_init(&run, 1, cnt, 1);
	rd.run = &run;
	rd.cnt = cnt;
	hist_init(&rd.rlat);
	start_thread(&th, reader_main, &rd);
	pthread_barrier_wait(&run.go);
	run.t_start = now_ns();
	rc = run_wait(&run, "consume", c->quiet, c->duration, 0);
	pthread_join(th, NULL);
	close(rd.fd);
	secs = (rd.t_end - run.t_start) / 1e9;
	records = c->set_rsize ? rd.bytes / c->record_size : rd.lines;

	if (c->json) {
		j_open(&j, NULL, '{');
		j_settings(&j, c);
		j_str(&j, "mode", "consume");
		j_str(&j, "path", c->path);
		j_u64(&j, "read_size", c->read_size);
		j_u64(&j, "limit", c->limit);
		j_u64(&j, "bytes", rd.bytes);
		j_u64(&j, "records", records);
		j_str(&j, "records_from", c->set_rsize ? "record_size" :
							 "newlines");
		j_u64(&j, "reads", rd.reads);
		j_dbl(&j, "seconds", secs, 6);
		j_dbl(&j, "records_per_sec", records / secs, 1);
		j_dbl(&j, "mb_per_sec", rd.bytes / secs / 1e6, 3);
		j_hist(&j, "read_latency_us", &rd.rlat);
	} else {
		printf("consume %s: %" PRIu64 " bytes, %" PRIu64 " records, "
		       "%" PRIu64 " reads of up to %" PRIu64 " bytes\n",
		       c->path, rd.bytes, records, rd.reads, c->read_size);
		printf("  %.3f s: %.1f MB/s, %.0f records/s\n", secs,
		       rd.bytes / secs / 1e6, records / secs);
		print_hist("read()", &rd.rlat);
	}
	rc = rc == -EINTR || atomic_load(&g_signalled) ? 1 : 0;
	if (rc && !rd.err)
		report_error(&j, c, "interrupted");
	if (rd.err) {
		snprintf(msg, sizeof(msg), "read %s at byte %" PRIu64 ": %s",
			 c->path, rd.bytes, strerror(-rd.err));
		report_error(&j, c, msg);
		rc = 1;
	}
	if (c->json)
		j_close(&j, '}');
	free(cnt);
	return rc;
}

/* ---- consume --follow ---- */

struct pending {
	uint64_t seq, t;
};

struct follower {
	const struct cfg *cfg;
	struct run *run;
	struct counters *cnt;
	unsigned idx;
	int fd, ino;			/* ino: inotify descriptor or -1 */
	uint64_t want;			/* records to read, then stop */
	unsigned writer;		/* in-process: the producer's id */
	uint64_t seq0;
	_Atomic uint64_t *pub;		/* in-process: write returns */
	_Atomic uint64_t *last;		/* in-process: latest read */
	struct hist lat;		/* from write() return (or stamp) */
	struct hist lat_call;		/* in-process: from write() call */
	struct pending *pend;
	size_t npend, cappend;
	uint64_t records, bytes, foreign, disorder, eofs;
	int err;
	const char *err_what;
};

static void atomic_max(_Atomic uint64_t *p, uint64_t v)
{
	uint64_t cur = atomic_load_explicit(p, memory_order_relaxed);

	while (cur < v && !atomic_compare_exchange_weak_explicit(
			p, &cur, v, memory_order_relaxed,
			memory_order_relaxed))
		;
}

/* Accounts one record read at time t.  Returns false to stop reading. */
static bool follower_record(struct follower *f, const char *p, size_t len,
			    uint64_t t)
{
	unsigned w;
	uint64_t seq, stamp, idx;

	if (rec_parse(p, len, NULL, &w, &seq, &stamp) != REC_OK ||
	    (f->pub && w != f->writer)) {
		f->foreign++;
		return true;
	}
	if (!f->pub) {
		hist_add(&f->lat, t > stamp ? t - stamp : 0);
		f->records++;
		return f->records < f->want;
	}
	if (seq < f->seq0 || seq - f->seq0 >= f->want) {
		f->foreign++;
		return true;
	}
	idx = seq - f->seq0;
	if (idx != f->records)
		f->disorder++;
	hist_add(&f->lat_call, t > stamp ? t - stamp : 0);
	atomic_max(&f->last[idx], t);
	uint64_t t1 = atomic_load_explicit(&f->pub[idx],
					   memory_order_acquire);
	if (t1) {
		hist_add(&f->lat, t > t1 ? t - t1 : 0);
	} else {
		if (f->npend == f->cappend) {
			f->cappend = f->cappend ? 2 * f->cappend : 64;
			f->pend = xrealloc(f->pend, f->cappend *
					   sizeof(*f->pend));
		}
		f->pend[f->npend++] = (struct pending){ idx, t };
	}
	f->records++;
	return f->records < f->want;
}

/* Waits for the file to grow after a read returned 0.  Returns 0 or -errno. */
static int follower_wait(struct follower *f)
{
	const struct cfg *c = f->cfg;
	char ev[4096] __attribute__((aligned(8)));
	ssize_t n;

	f->eofs++;
	switch (c->wait) {
	case WAIT_BLOCK:
		f->err_what = "read() returned end of file, but --wait "
			      "block needs a file whose reads block at its "
			      "end (a topicfs .follow file); use --wait "
			      "inotify or poll for other files";
		return -EPIPE;
	case WAIT_INOTIFY:
		n = read(f->ino, ev, sizeof(ev));
		if (n < 0 && errno != EINTR) {
			f->err_what = "read (inotify) for";
			return -errno;
		}
		return 0;
	case WAIT_POLL:
		sleep_until_ns(now_ns() + c->poll_ns);
		return 0;
	}
	return 0;
}

static void *follower_main(void *arg)
{
	struct follower *f = arg;
	const struct cfg *c = f->cfg;
	size_t cap = c->read_size + MiB, fill = 0;
	char *buf = xcalloc(1, cap);
	bool more = true;

	pthread_barrier_wait(&f->run->go);
	while (more && !atomic_load_explicit(&g_stop, memory_order_relaxed)) {
		size_t want = cap - fill < c->read_size ? cap - fill :
							  c->read_size;
		ssize_t n = read(f->fd, buf + fill, want);
		uint64_t t = now_ns();
		char *p, *e, *nl;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			f->err = -errno;
			f->err_what = "read";
			atomic_store(&g_stop, 1);
			break;
		}
		if (n == 0) {
			f->err = follower_wait(f);
			if (f->err) {
				/* Stop the producer: this run is lost. */
				atomic_store(&g_stop, 1);
				break;
			}
			continue;
		}
		f->bytes += (uint64_t)n;
		atomic_fetch_add_explicit(&f->cnt->bytes, (uint64_t)n,
					  memory_order_relaxed);
		p = buf;
		e = buf + fill + n;
		while (more && (nl = memchr(p, '\n', (size_t)(e - p)))) {
			more = follower_record(f, p, (size_t)(nl + 1 - p), t);
			p = nl + 1;
		}
		atomic_store_explicit(&f->cnt->records, f->records,
				      memory_order_relaxed);
		fill = (size_t)(e - p);
		if (fill == cap) {
			f->err = -EMSGSIZE;
			f->err_what = "read (a line longer than the buffer)";
			atomic_store(&g_stop, 1);
			break;
		}
		memmove(buf, p, fill);
	}
	free(buf);
	run_thread_done(f->run);
	return NULL;
}

static int open_follow(const struct cfg *c, struct follower *f, off_t start)
{
	f->fd = open(c->path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		die("cannot open %s for reading: %s", c->path,
		    strerror(errno));
	if (start && lseek(f->fd, start, SEEK_SET) != start)
		die("cannot seek %s to its end (byte %lld): %s", c->path,
		    (long long)start, strerror(errno));
	f->ino = -1;
	if (c->wait == WAIT_INOTIFY) {
		/* The watch exists before the first read, so no growth after
		 * that read can be missed. */
		f->ino = inotify_init1(IN_CLOEXEC);
		if (f->ino < 0)
			die("inotify_init1: %s", strerror(errno));
		if (inotify_add_watch(f->ino, c->path,
				      IN_MODIFY | IN_CLOSE_WRITE) < 0)
			die("cannot watch %s with inotify: %s", c->path,
			    strerror(errno));
	}
	return 0;
}

/* What the followers of one run got, summed. */
struct follow_sum {
	uint64_t got_min, got_max;	/* records per follower */
	uint64_t foreign, disorder, bytes;
	uint64_t settled;		/* reads that beat write()'s return */
	uint64_t unsettled;		/* records never written (a bug) */
	double secs;
	struct hist lat, lat_call, all;
	struct prod_sum ps;		/* the in-process producer */
	char msg[768];			/* the first error, or "" */
};

/* Counts what each follower got and keeps the first follower error. */
static void follow_collect(const struct cfg *c, const struct follower *f,
			   struct follow_sum *s)
{
	s->got_min = UINT64_MAX;
	for (unsigned i = 0; i < c->followers; i++) {
		if (f[i].records < s->got_min)
			s->got_min = f[i].records;
		if (f[i].records > s->got_max)
			s->got_max = f[i].records;
		s->foreign += f[i].foreign;
		s->disorder += f[i].disorder;
		s->bytes += f[i].bytes;
		if (!f[i].err || s->msg[0])
			continue;
		if (f[i].err == -EPIPE)
			snprintf(s->msg, sizeof(s->msg), "follower %u: %s: %s",
				 i, c->path, f[i].err_what);
		else
			snprintf(s->msg, sizeof(s->msg), "follower %u: %s %s: "
				 "%s", i, f[i].err_what, c->path,
				 strerror(-f[i].err));
	}
}

/*
 * After the threads are joined: settles the latencies kept aside, merges
 * the histograms, computes time-to-all-followers and closes descriptors.
 */
static void follow_settle(const struct cfg *c, struct follower *f,
			  _Atomic uint64_t *pub, _Atomic uint64_t *last,
			  struct follow_sum *s)
{
	for (unsigned i = 0; i < c->followers; i++) {
		for (size_t k = 0; k < f[i].npend; k++) {
			uint64_t t1 = atomic_load(&pub[f[i].pend[k].seq]);
			uint64_t t = f[i].pend[k].t;

			if (!t1) {
				s->unsettled++;
				continue;
			}
			hist_add(&f[i].lat, t > t1 ? t - t1 : 0);
			s->settled++;
		}
		hist_merge(&s->lat, &f[i].lat);
		hist_merge(&s->lat_call, &f[i].lat_call);
		close(f[i].fd);
		if (f[i].ino >= 0)
			close(f[i].ino);
	}
	if (!pub || s->got_min != c->records)
		return;
	for (uint64_t k = 0; k < c->records; k++) {
		uint64_t t1 = atomic_load(&pub[k]);
		uint64_t tl = atomic_load(&last[k]);

		if (t1)
			hist_add(&s->all, tl > t1 ? tl - t1 : 0);
	}
}

static const char *wait_name(enum wait_mode w)
{
	return w == WAIT_BLOCK ? "block" : w == WAIT_INOTIFY ? "inotify" :
							       "poll";
}

/* Prints the result; with --json leaves the object open for errors. */
static void follow_print(const struct cfg *c, struct json *j,
			 const struct follow_sum *s)
{
	unsigned nf = c->followers;

	if (c->json) {
		j_open(j, NULL, '{');
		j_settings(j, c);
		j_str(j, "mode", "follow");
		j_str(j, "path", c->path);
		j_str(j, "append_to", c->append_to);
		j_str(j, "wait", wait_name(c->wait));
		j_u64(j, "followers", nf);
		j_u64(j, "read_size", c->read_size);
		j_str(j, "latency_from", c->append_to ? "write_return" :
							"record_stamp");
		if (c->append_to)
			j_producer_cfg(j, c);
		j_u64(j, "records_requested", c->records);
		j_u64(j, "records_min", s->got_min);
		j_u64(j, "records_max", s->got_max);
		j_u64(j, "bytes", s->bytes);
		j_u64(j, "foreign_lines", s->foreign);
		j_u64(j, "out_of_order", s->disorder);
		j_u64(j, "read_before_write_returned", s->settled);
		j_bool(j, "complete", s->got_min == c->records);
		j_dbl(j, "seconds", s->secs, 6);
		j_dbl(j, "records_per_sec", c->records / s->secs, 1);
		j_hist(j, "latency_us", &s->lat);
		if (c->append_to) {
			j_hist(j, "from_call_latency_us", &s->lat_call);
			j_hist(j, "all_followers_latency_us", &s->all);
			j_hist(j, "write_latency_us", &s->ps.wlat);
		}
		return;
	}
	printf("follow %s: %u follower%s, %" PRIu64 " records%s, wait %s, "
	       "latency from %s\n", c->path, nf, nf == 1 ? "" : "s",
	       c->records, c->append_to ? " appended by this process" : "",
	       wait_name(c->wait), c->append_to ?
	       "write() return to read() return" :
	       "write() call (record stamp)");
	printf("  %.3f s; each follower got %" PRIu64 "..%" PRIu64
	       " records, %" PRIu64 " out of order, %" PRIu64
	       " foreign lines\n", s->secs, s->got_min, s->got_max,
	       s->disorder, s->foreign);
	print_hist("append-to-read", &s->lat);
	print_hist("from write() call", &s->lat_call);
	print_hist("to all followers", &s->all);
	print_hist("write()", &s->ps.wlat);
	if (s->settled)
		printf("  %" PRIu64 " reads returned a record before its "
		       "write() returned (counted as 0)\n", s->settled);
}

/* Sets s->msg to why the run failed, if it did. */
static void follow_verdict(const struct cfg *c, struct follow_sum *s)
{
	if (s->msg[0])
		return;
	if (s->ps.err)
		snprintf(s->msg, sizeof(s->msg), "%s %s: %s", s->ps.err_op,
			 c->append_to, strerror(-s->ps.err));
	else if (s->got_min < c->records && !atomic_load(&g_stop))
		snprintf(s->msg, sizeof(s->msg), "followers stopped after %"
			 PRIu64 " of %" PRIu64 " records", s->got_min,
			 c->records);
	else if (s->disorder || s->unsettled)
		snprintf(s->msg, sizeof(s->msg), "%" PRIu64 " records out of "
			 "order, %" PRIu64 " never written", s->disorder,
			 s->unsettled);
}

/*
 * Starts the followers (and the producer with --append-to), waits for
 * them and reports.  Returns 0, or 1 on failure; exits at once on a
 * timeout or an interrupt, since followers may be stuck in read().
 */
static int do_consume_follow(struct cfg *c)
{
	unsigned nf = c->followers, nth = nf + (c->append_to ? 1 : 0);
	struct follower *f = xcalloc(nf, sizeof(*f));
	struct counters *cnt = aligned_alloc(64, sizeof(*cnt) * nth);
	pthread_t *th = xcalloc(nth, sizeof(*th));
	_Atomic uint64_t *pub = NULL, *last = NULL;
	struct follow_sum *s = xcalloc(1, sizeof(*s));
	struct json j = { .f = stdout };
	struct writer wr;
	struct run run;
	off_t start = 0;
	int rc;

	if (!cnt)
		die("out of memory");
	memset(cnt, 0, sizeof(*cnt) * nth);
	memset(&wr, 0, sizeof(wr));
	hist_init(&s->lat);
	hist_init(&s->lat_call);
	hist_init(&s->all);
	hist_init(&s->ps.wlat);
	hist_init(&s->ps.slat);
	if (!c->set_records)
		c->records = 5000;
	run_init(&run, nth, cnt, nth);
	if (c->append_to) {
		struct stat st;

		if (!c->set_rate)
			c->rate = 1000;
		c->writers = 1;
		producer_settings(c);
		if (c->records > (1ull << 28))
			usage_error("--records is at most 2^28 with "
				    "--append-to");
		pub = xcalloc(c->records, sizeof(*pub));
		last = xcalloc(c->records, sizeof(*last));
		writers_setup(c, &run, &wr, &cnt[nf], 1, c->append_to);
		wr.pub = pub;
		/* Held back so that followers already wait at the end when
		 * the first record lands. */
		wr.delay = c->warmup;
		/* Followers start where the producer starts: at the end. */
		if (fstat(wr.fd, &st))
			die("fstat %s: %s", c->append_to, strerror(errno));
		start = st.st_size;
	}
	for (unsigned i = 0; i < nf; i++) {
		f[i].cfg = c;
		f[i].run = &run;
		f[i].cnt = &cnt[i];
		f[i].idx = i;
		f[i].want = c->records;
		f[i].writer = c->writer_id;
		f[i].seq0 = c->start_seq;
		f[i].pub = pub;
		f[i].last = last;
		hist_init(&f[i].lat);
		hist_init(&f[i].lat_call);
		open_follow(c, &f[i], start);
		start_thread(&th[i], follower_main, &f[i]);
	}
	if (c->append_to)
		start_thread(&th[nf], writer_main, &wr);
	/* The progress line shows the producer, or else the first follower. */
	run.cnt = c->append_to ? &cnt[nf] : &cnt[0];
	run.ncnt = 1;
	pthread_barrier_wait(&run.go);
	run.t_start = now_ns();
	rc = run_wait(&run, "follow", c->quiet, 0, c->timeout);

	follow_collect(c, f, s);
	if (rc) {
		if (!s->msg[0])
			snprintf(s->msg, sizeof(s->msg), "%s after %.1f s: "
				 "followers got %" PRIu64 "..%" PRIu64 " of %"
				 PRIu64 " records", rc == -ETIMEDOUT ?
				 "timed out" : "interrupted",
				 (now_ns() - run.t_start) / 1e9, s->got_min,
				 s->got_max, c->records);
		if (c->json) {
			j_open(&j, NULL, '{');
			j_settings(&j, c);
			j_str(&j, "mode", "follow");
			j_str(&j, "path", c->path);
		}
		report_error(&j, c, s->msg);
		if (c->json)
			j_close(&j, '}');
		fflush(stdout);
		_exit(1);
	}
	for (unsigned i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	s->secs = (now_ns() - run.t_start) / 1e9;
	if (c->append_to) {
		writers_sum(&wr, 1, &s->ps);
		s->secs = (s->ps.t_end - run.t_start) / 1e9;
	}
	follow_settle(c, f, pub, last, s);
	follow_print(c, &j, s);
	follow_verdict(c, s);
	rc = 0;
	if (s->msg[0]) {
		report_error(&j, c, s->msg);
		rc = 1;
	}
	if (c->json)
		j_close(&j, '}');
	for (unsigned i = 0; i < nf; i++)
		free(f[i].pend);
	free(f);
	free(th);
	free(cnt);
	free(pub);
	free(last);
	free(s);
	return rc;
}

/* ---- verify ---- */

struct wstate {
	uint64_t next, count, last_stamp;
	bool seen;
};

struct verifier {
	const struct cfg *cfg;
	struct wstate *w;		/* MAX_WRITERS entries */
	struct padref pr;
	uint64_t lines, records, foreign, bad, missing, dups, reorder;
	uint64_t stamp_back, wrong_size, errors_shown;
	unsigned writers;
};

static void verr(struct verifier *v, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void verr(struct verifier *v, uint64_t off, const char *fmt, ...)
{
	va_list ap;

	if (v->errors_shown++ >= 10)
		return;
	fprintf(stderr, "topicfs-perf: verify %s: byte %" PRIu64 ": ",
		v->cfg->path, off);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void verify_line(struct verifier *v, const char *p, size_t len,
			uint64_t off)
{
	const struct cfg *c = v->cfg;
	struct wstate *ws;
	enum rec_err e;
	uint64_t seq, stamp;
	unsigned w;

	v->lines++;
	e = rec_parse(p, len, &v->pr, &w, &seq, &stamp);
	if (e == REC_FOREIGN) {
		v->foreign++;
		if (!c->allow_foreign)
			verr(v, off, "line %" PRIu64 ": %s", v->lines,
			     rec_err_str[e]);
		return;
	}
	if (e != REC_OK) {
		v->bad++;
		verr(v, off, "line %" PRIu64 ": %s", v->lines, rec_err_str[e]);
		return;
	}
	if (c->set_rsize && len != c->record_size) {
		v->wrong_size++;
		verr(v, off, "line %" PRIu64 " is %zu bytes, expected %" PRIu64,
		     v->lines, len, c->record_size);
	}
	v->records++;
	ws = &v->w[w];
	if (!ws->seen) {
		ws->seen = true;
		ws->next = c->start_seq;
		v->writers++;
	}
	ws->count++;
	if (stamp < ws->last_stamp) {
		v->stamp_back++;
		verr(v, off, "writer %u seq %" PRIu64 ": stamp went backwards",
		     w, seq);
	}
	ws->last_stamp = stamp;
	if (seq == ws->next) {
		ws->next++;
	} else if (seq > ws->next) {
		v->missing += seq - ws->next;
		verr(v, off, "writer %u: expected seq %" PRIu64 ", found %"
		     PRIu64 " (%" PRIu64 " missing)", w, ws->next, seq,
		     seq - ws->next);
		ws->next = seq + 1;
	} else if (seq == ws->next - 1) {
		v->dups++;
		verr(v, off, "writer %u: seq %" PRIu64 " duplicated", w, seq);
	} else {
		v->reorder++;
		verr(v, off, "writer %u: seq %" PRIu64 " after %" PRIu64
		     " (duplicate or out of order)", w, seq, ws->next - 1);
	}
}

static int do_verify(struct cfg *c)
{
	struct verifier v = { .cfg = c };
	struct json j = { .f = stdout };
	size_t cap = 4 * MiB, fill = 0;
	char *buf = xcalloc(1, cap);
	uint64_t off = 0, t0 = now_ns(), tail = 0;
	int fd = open(c->path, O_RDONLY | O_CLOEXEC), err = 0;
	bool ok;

	if (fd < 0)
		die("cannot open %s for reading: %s", c->path,
		    strerror(errno));
	v.w = xcalloc(MAX_WRITERS, sizeof(*v.w));
	for (;;) {
		ssize_t n;
		char *p, *e, *nl;

		if (fill == cap) {
			if (cap >= REC_MAX + MiB) {
				verr(&v, off, "line longer than 64 MiB");
				v.bad++;
				err = -EMSGSIZE;
				break;
			}
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + fill, cap - fill);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		p = buf;
		e = buf + fill + n;
		while ((nl = memchr(p, '\n', (size_t)(e - p)))) {
			verify_line(&v, p, (size_t)(nl + 1 - p), off);
			off += (uint64_t)(nl + 1 - p);
			p = nl + 1;
		}
		fill = (size_t)(e - p);
		memmove(buf, p, fill);
	}
	close(fd);
	free(buf);
	tail = fill;
	if (tail)
		verr(&v, off, "%" PRIu64 " bytes at the end have no newline "
		     "(torn tail)", tail);
	if (c->expect_writers && v.writers != c->expect_writers)
		verr(&v, off, "found %u writers, expected %u", v.writers,
		     c->expect_writers);
	if (c->expect_records && v.records != c->expect_records)
		verr(&v, off, "found %" PRIu64 " records, expected %" PRIu64,
		     v.records, c->expect_records);
	ok = !err && !tail && !v.bad && !v.missing && !v.dups && !v.reorder &&
	     !v.stamp_back && !v.wrong_size &&
	     (c->allow_foreign || !v.foreign) &&
	     (!c->expect_writers || v.writers == c->expect_writers) &&
	     (!c->expect_records || v.records == c->expect_records);

	if (c->json) {
		j_open(&j, NULL, '{');
		j_settings(&j, c);
		j_str(&j, "mode", "verify");
		j_str(&j, "path", c->path);
		j_bool(&j, "ok", ok);
		j_u64(&j, "bytes", off + tail);
		j_u64(&j, "lines", v.lines);
		j_u64(&j, "records", v.records);
		j_u64(&j, "writers", v.writers);
		j_u64(&j, "foreign_lines", v.foreign);
		j_u64(&j, "damaged", v.bad);
		j_u64(&j, "wrong_size", v.wrong_size);
		j_u64(&j, "missing", v.missing);
		j_u64(&j, "duplicates", v.dups);
		j_u64(&j, "out_of_order", v.reorder);
		j_u64(&j, "stamps_backwards", v.stamp_back);
		j_u64(&j, "torn_tail_bytes", tail);
		j_dbl(&j, "seconds", (now_ns() - t0) / 1e9, 6);
		j_open(&j, "per_writer", '{');
		for (unsigned w = 0; w < MAX_WRITERS; w++) {
			char k[8];

			if (!v.w[w].seen)
				continue;
			snprintf(k, sizeof(k), "%u", w);
			j_u64(&j, k, v.w[w].count);
		}
		j_close(&j, '}');
		if (err)
			j_str(&j, "error", strerror(-err));
		j_close(&j, '}');
	} else {
		printf("verify %s: %s\n", c->path, ok ? "OK" : "FAILED");
		printf("  %" PRIu64 " bytes, %" PRIu64 " records from %u "
		       "writer%s, %" PRIu64 " foreign lines\n", off + tail,
		       v.records, v.writers, v.writers == 1 ? "" : "s",
		       v.foreign);
		if (!ok)
			printf("  damaged %" PRIu64 ", wrong size %" PRIu64
			       ", missing %" PRIu64 ", duplicated %" PRIu64
			       ", out of order %" PRIu64 ", stamps backwards %"
			       PRIu64 ", torn tail %" PRIu64 " bytes\n", v.bad,
			       v.wrong_size, v.missing, v.dups, v.reorder,
			       v.stamp_back, tail);
	}
	if (err)
		fprintf(stderr, "topicfs-perf: read %s at byte %" PRIu64
			": %s\n", c->path, off + tail, strerror(-err));
	free(v.w);
	free(v.pr.buf);
	return ok ? 0 : 1;
}

/* ---- command line ---- */

static const char HELP[] =
"Usage: topicfs-perf produce [OPTIONS] FILE\n"
"       topicfs-perf consume [OPTIONS] FILE\n"
"       topicfs-perf consume --follow [--append-to FILE] [OPTIONS] FILE\n"
"       topicfs-perf verify  [OPTIONS] FILE\n"
"\n"
"Load generator and checker for logs kept in files (topicfs partitions or\n"
"any file).  Records are lines:  tp1 WRITER SEQ STAMP PADDING\\n\n"
"\n"
"produce: append records to FILE (opened O_WRONLY|O_APPEND|O_CREAT), each\n"
"writer thread with its own descriptor, whole records per write().\n"
"  -n, --records N         records to write in all (default 1M)\n"
"      --bytes SIZE        or: write SIZE bytes' worth of records\n"
"  -s, --record-size SIZE  bytes per record with its newline (default 200,\n"
"                          at least 40)\n"
"  -w, --write-size SIZE   bytes per write(), rounded down to whole records\n"
"                          (default: one record per write)\n"
"  -W, --writers W         concurrent writer threads (default 1)\n"
"      --writer-id ID      first writer id (default 0; writers use\n"
"                          ID..ID+W-1, at most 65535)\n"
"      --start-seq S       first sequence number of each writer (default 0)\n"
"      --fsync-records K   fsync after every K records a writer writes\n"
"      --fsync-bytes SIZE  fsync after every SIZE bytes a writer writes\n"
"      --fdatasync         call fdatasync instead of fsync\n"
"      --rate R            at most R records per second in all\n"
"  -d, --duration SECS     stop after SECS seconds even if not done\n"
"\n"
"consume: read FILE from the start to its end with read() calls.\n"
"  -r, --read-size SIZE    bytes per read() (default 1MiB)\n"
"      --limit SIZE        stop after SIZE bytes\n"
"  -s, --record-size SIZE  count records as bytes/SIZE instead of counting\n"
"                          newlines\n"
"  -d, --duration SECS     stop after SECS seconds\n"
"\n"
"consume --follow: F follower threads read FILE as it grows and report\n"
"append-to-read latency.  With --append-to, a producer thread in this\n"
"process appends to that file (FILE itself or another view of the same\n"
"bytes, such as a topicfs .follow file) and latency runs from its write()\n"
"returning to a follower's read() returning; the followers start at that\n"
"file's end.  Without it, latency runs from the stamp in each record.\n"
"  -F, --followers F       follower threads, one descriptor each (default 1)\n"
"      --append-to FILE    produce into FILE from this process\n"
"      --wait HOW          at the end of FILE: block (a read that blocks,\n"
"                          topicfs .follow; the default), inotify, or\n"
"                          poll[:MICROSECONDS] (default 1000)\n"
"  -n, --records N         records each follower must read (default 5000)\n"
"      --rate R            producer records per second (default 1000)\n"
"  -s, -w, --fsync-*, --writer-id   as for produce (one producer thread)\n"
"  -r, --read-size SIZE    bytes per read() (default 1MiB)\n"
"      --warmup SECS       producer waits this long first (default 0.2)\n"
"      --timeout SECS      fail if not done by then (default 60)\n"
"\n"
"verify: check FILE: every line an intact record, each writer's sequence\n"
"numbers in order without gaps or duplicates, no torn tail.\n"
"      --records N         expect exactly N records in all\n"
"      --writers W         expect exactly W distinct writers\n"
"      --start-seq S       each writer's first sequence number (default 0)\n"
"  -s, --record-size SIZE  every record must be SIZE bytes\n"
"      --allow-foreign     lines that are not records are not errors\n"
"\n"
"Common:\n"
"      --json              print one JSON object on stdout instead of text\n"
"  -q, --quiet             no progress line on stderr\n"
"  -h, --help              this text\n"
"      --version           print the version\n"
"\n"
"SIZE takes K, M, G (powers of 1024; KiB and KB also mean 1024): 128K, 1MiB.\n"
"N and R take k, M, G (powers of 1000): 5M records.  SECS may end in s or ms.\n"
"MB/s means 10^6 bytes per second.  Latencies are in microseconds, from a\n"
"log-linear histogram (under 0.8% error; max is exact).\n"
"Exit status: 0 ok, 1 failure (I/O, verification, timeout), 2 usage.\n";

enum {
	O_BYTES = 256, O_WRITER_ID, O_START_SEQ, O_FSYNC_RECORDS,
	O_FSYNC_BYTES, O_FDATASYNC, O_RATE, O_LIMIT, O_FOLLOW, O_APPEND_TO,
	O_WAIT, O_WARMUP, O_TIMEOUT, O_ALLOW_FOREIGN, O_JSON, O_VERSION,
};

static const struct option LONGOPTS[] = {
	{ "records", required_argument, NULL, 'n' },
	{ "bytes", required_argument, NULL, O_BYTES },
	{ "record-size", required_argument, NULL, 's' },
	{ "write-size", required_argument, NULL, 'w' },
	{ "writers", required_argument, NULL, 'W' },
	{ "writer-id", required_argument, NULL, O_WRITER_ID },
	{ "start-seq", required_argument, NULL, O_START_SEQ },
	{ "fsync-records", required_argument, NULL, O_FSYNC_RECORDS },
	{ "fsync-bytes", required_argument, NULL, O_FSYNC_BYTES },
	{ "fdatasync", no_argument, NULL, O_FDATASYNC },
	{ "rate", required_argument, NULL, O_RATE },
	{ "duration", required_argument, NULL, 'd' },
	{ "read-size", required_argument, NULL, 'r' },
	{ "limit", required_argument, NULL, O_LIMIT },
	{ "follow", no_argument, NULL, O_FOLLOW },
	{ "followers", required_argument, NULL, 'F' },
	{ "append-to", required_argument, NULL, O_APPEND_TO },
	{ "wait", required_argument, NULL, O_WAIT },
	{ "warmup", required_argument, NULL, O_WARMUP },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "allow-foreign", no_argument, NULL, O_ALLOW_FOREIGN },
	{ "json", no_argument, NULL, O_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, O_VERSION },
	{ NULL, 0, NULL, 0 },
};

/* Rejects an option its mode does not take (follow_only: --follow only). */
static void check_mode(const struct cfg *c, const char *name, unsigned modes,
		       bool follow_only)
{
	if (!(c->mode & modes) || (follow_only && !c->follow))
		usage_error("option --%s does not apply to this mode%s", name,
			    follow_only ? " (it needs consume --follow)" : "");
}

static void parse_wait(struct cfg *c, const char *s)
{
	if (strcmp(s, "block") == 0) {
		c->wait = WAIT_BLOCK;
	} else if (strcmp(s, "inotify") == 0) {
		c->wait = WAIT_INOTIFY;
	} else if (strncmp(s, "poll", 4) == 0 && (!s[4] || s[4] == ':')) {
		c->wait = WAIT_POLL;
		if (s[4] == ':')
			c->poll_ns = opt_num("--wait poll", s + 5, false, 1,
					     60000000) * 1000;
	} else {
		usage_error("--wait: '%s' is not block, inotify or "
			    "poll[:MICROSECONDS]", s);
	}
}

static void parse_args(struct cfg *c, int argc, char **argv)
{
	const unsigned P = M_PRODUCE, C = M_CONSUME, V = M_VERIFY;
	const char *mode;
	int opt;

	if (argc < 2)
		usage_error("which mode: produce, consume or verify?");
	mode = argv[1];
	if (!strcmp(mode, "-h") || !strcmp(mode, "--help")) {
		fputs(HELP, stdout);
		exit(0);
	}
	if (!strcmp(mode, "--version")) {
		printf("topicfs-perf %s\n", PERF_VERSION);
		exit(0);
	}
	if (!strcmp(mode, "produce"))
		c->mode = M_PRODUCE;
	else if (!strcmp(mode, "consume"))
		c->mode = M_CONSUME;
	else if (!strcmp(mode, "verify"))
		c->mode = M_VERIFY;
	else
		usage_error("unknown mode '%s' (produce, consume, verify)",
			    mode);

	/* A first pass finds --follow, which changes what else is valid. */
	for (int i = 2; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--follow"))
			c->follow = true;
	if (c->follow && c->mode != M_CONSUME)
		usage_error("--follow belongs to consume");

	optind = 2;
	while ((opt = getopt_long(argc, argv, "n:s:w:W:d:r:F:qh", LONGOPTS,
				  NULL)) != -1) {
		switch (opt) {
		case 'n':
			check_mode(c, "records", P | C | V, false);
			if (c->mode == M_CONSUME && !c->follow)
				usage_error("consume reads to the end; use "
					    "--limit to stop early");
			c->records = opt_num("--records", optarg, false, 1,
					     REC_SEQ_MAX);
			c->expect_records = c->records;
			c->set_records = true;
			break;
		case O_BYTES:
			check_mode(c, "bytes", P, false);
			c->bytes = opt_num("--bytes", optarg, true, 1,
					   UINT64_MAX);
			c->set_bytes = true;
			break;
		case 's':
			c->record_size = opt_num("--record-size", optarg, true,
						 REC_MIN, REC_MAX);
			c->set_rsize = true;
			break;
		case 'w':
			check_mode(c, "write-size", P | C,
				   c->mode == M_CONSUME);
			c->write_size = opt_num("--write-size", optarg, true,
						1, REC_MAX);
			c->set_write_size = true;
			break;
		case 'W':
			check_mode(c, "writers", P | V, false);
			c->writers = (unsigned)opt_num("--writers", optarg,
						       false, 1, MAX_WRITERS);
			c->expect_writers = c->writers;
			break;
		case O_WRITER_ID:
			check_mode(c, "writer-id", P | C, c->mode == M_CONSUME);
			c->writer_id = (unsigned)opt_num("--writer-id", optarg,
							 false, 0,
							 MAX_WRITERS - 1);
			break;
		case O_START_SEQ:
			c->start_seq = opt_num("--start-seq", optarg, false, 0,
					       REC_SEQ_MAX);
			break;
		case O_FSYNC_RECORDS:
			check_mode(c, "fsync-records", P | C,
				   c->mode == M_CONSUME);
			c->fsync_records = opt_num("--fsync-records", optarg,
						   false, 1, UINT64_MAX);
			break;
		case O_FSYNC_BYTES:
			check_mode(c, "fsync-bytes", P | C,
				   c->mode == M_CONSUME);
			c->fsync_bytes = opt_num("--fsync-bytes", optarg, true,
						 1, UINT64_MAX);
			break;
		case O_FDATASYNC:
			check_mode(c, "fdatasync", P | C, c->mode == M_CONSUME);
			c->fdatasync = true;
			break;
		case O_RATE:
			check_mode(c, "rate", P | C, c->mode == M_CONSUME);
			c->rate = (double)opt_num("--rate", optarg, false, 1,
						  UINT64_MAX);
			c->set_rate = true;
			break;
		case 'd':
			check_mode(c, "duration", P | C, false);
			if (c->follow)
				usage_error("--duration does not apply with "
					    "--follow (use --timeout)");
			c->duration = parse_seconds("--duration", optarg);
			break;
		case 'r':
			check_mode(c, "read-size", C, false);
			c->read_size = opt_num("--read-size", optarg, true, 1,
					       REC_MAX);
			break;
		case O_LIMIT:
			check_mode(c, "limit", C, false);
			if (c->follow)
				usage_error("--limit does not apply with "
					    "--follow (use --records)");
			c->limit = opt_num("--limit", optarg, true, 1,
					   UINT64_MAX);
			break;
		case O_FOLLOW:
			break;
		case 'F':
			check_mode(c, "followers", C, true);
			c->followers = (unsigned)opt_num("--followers", optarg,
							 false, 1, 10000);
			break;
		case O_APPEND_TO:
			check_mode(c, "append-to", C, true);
			c->append_to = optarg;
			break;
		case O_WAIT:
			check_mode(c, "wait", C, true);
			parse_wait(c, optarg);
			break;
		case O_WARMUP:
			check_mode(c, "warmup", C, true);
			c->warmup = parse_seconds("--warmup", optarg);
			break;
		case O_TIMEOUT:
			check_mode(c, "timeout", C, true);
			c->timeout = parse_seconds("--timeout", optarg);
			break;
		case O_ALLOW_FOREIGN:
			check_mode(c, "allow-foreign", V, false);
			c->allow_foreign = true;
			break;
		case O_JSON:
			c->json = true;
			break;
		case 'q':
			c->quiet = true;
			break;
		case 'h':
			fputs(HELP, stdout);
			exit(0);
		case O_VERSION:
			printf("topicfs-perf %s\n", PERF_VERSION);
			exit(0);
		default:
			usage_error("bad option");
		}
	}
	if (optind != argc - 1)
		usage_error(optind >= argc ? "which FILE?" :
			    "one FILE only ('%s' is extra)", argv[optind + 1]);
	c->path = argv[optind];
	if (c->mode == M_VERIFY && !c->set_records)
		c->expect_records = 0;
}

int main(int argc, char **argv)
{
	struct cfg c = {
		.records = 1000000,
		.record_size = 200,
		.read_size = MiB,
		.writers = 1,
		.followers = 1,
		.wait = WAIT_BLOCK,
		.poll_ns = 1000000,
		.timeout = 60,
		.warmup = 0.2,
	};

	parse_args(&c, argc, argv);
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	install_signals();
	switch (c.mode) {
	case M_PRODUCE:
		return do_produce(&c);
	case M_CONSUME:
		return c.follow ? do_consume_follow(&c) : do_consume_plain(&c);
	case M_VERIFY:
		return do_verify(&c);
	}
	return 2;
}
