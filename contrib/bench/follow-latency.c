/*
 * follow-latency - append-to-read latency through a topicfs .follow file.
 *
 *   follow-latency [-F followers] [-n records] [-w warmup] [-g gap_us]
 *                  [-s record_bytes] [-P] APPEND_FILE FOLLOW_FILE
 *
 * F followers (threads, or processes with -P) open FOLLOW_FILE at its
 * current end and block in read().  One producer appends records to
 * APPEND_FILE (O_APPEND), one record per write(), and takes
 * CLOCK_MONOTONIC right after each write() returns.  Each follower takes
 * the time right after each read() returns.  The latency of a record for
 * a follower is read_return - write_return (negative when the reader was
 * woken before the writer's write() returned: counted as 0 and reported
 * as "early").
 *
 * The producer is closed-loop: after each record it waits until every
 * follower has it, then sleeps gap_us before the next, so every record
 * finds the followers parked at the end.  That is the idle case the
 * target of issue 3 is about (p99 under 1 ms for one follower), not a
 * throughput test; contrib/perf/topicfs-perf.c covers paced streams.
 *
 * Output: one line per statistic (microseconds):
 *   per_read   p50 p90 p99 max  over every (record, follower) pair
 *   all        p50 p90 p99 max  per record, until the last follower had it
 *   from_call  p50 p90 p99 max  as per_read, but from the write() call
 *   write_call p50 p90 p99 max  the write() itself
 * and "early N": pairs where the read returned before the write().  The first `warmup` records are not counted.
 *
 * libc and pthreads only.  Exit status 0, 1 on an error or a timeout
 * (a follower missing a record for 10 s), 2 on usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_NS (10 * 1000000000LL)

struct shared {
	_Atomic unsigned ready;		/* followers open at the end */
	_Atomic int failed;
	_Atomic unsigned got[];		/* per record: followers that have it */
};

static unsigned nfollow = 1, nrec = 2000, warmup = 100, gap_us = 500;
static size_t recsize = 100;
static const char *follow_path;
static off_t start;
static struct shared *sh;
static int64_t *t_call;			/* [nrec] write() called */
static int64_t *t_write;		/* [nrec] write() returned */
static int64_t *t_read;			/* [nfollow][nrec] read() returned */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void *xmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

/* Reads records until the last one; fills t_read[idx * nrec + seq]. */
static int follow(unsigned idx)
{
	size_t cap = 1 << 16, fill = 0;
	char *buf = malloc(cap);
	int64_t *mine = t_read + (size_t)idx * nrec;
	unsigned seen = 0;
	int fd = open(follow_path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || lseek(fd, start, SEEK_SET) != start) {
		fprintf(stderr, "follower %u: %s: %s\n", idx, follow_path,
			strerror(errno));
		return -1;
	}
	atomic_fetch_add(&sh->ready, 1);
	while (seen < nrec && !atomic_load(&sh->failed)) {
		ssize_t n = read(fd, buf + fill, cap - fill);
		int64_t t = now_ns();

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			fprintf(stderr, "follower %u: read: %s\n", idx,
				n ? strerror(errno) : "end of file");
			close(fd);
			return -1;
		}
		char *p = buf, *e = buf + fill + n, *nl;

		while ((nl = memchr(p, '\n', (size_t)(e - p)))) {
			unsigned long seq = strtoul(p, NULL, 10);

			if (seq < nrec) {
				mine[seq] = t;
				atomic_fetch_add(&sh->got[seq], 1);
				seen++;
			}
			p = nl + 1;
		}
		fill = (size_t)(e - p);
		memmove(buf, p, fill);
	}
	close(fd);
	free(buf);
	return 0;
}

static void *follow_thread(void *arg)
{
	if (follow((unsigned)(uintptr_t)arg) != 0)
		atomic_store(&sh->failed, 1);
	return NULL;
}

/* Waits until cnt reaches want.  Returns false on timeout or failure. */
static bool wait_count(_Atomic unsigned *cnt, unsigned want)
{
	int64_t deadline = now_ns() + TIMEOUT_NS;

	while (atomic_load(cnt) < want) {
		if (atomic_load(&sh->failed) || now_ns() > deadline)
			return false;
		sleep_us(20);
	}
	return true;
}

static int produce(const char *path)
{
	char *rec = malloc(recsize);
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	for (unsigned i = 0; i < nrec; i++) {
		int len = snprintf(rec, recsize, "%u ", i);

		memset(rec + len, 'x', recsize - (size_t)len - 1);
		rec[recsize - 1] = '\n';
		sleep_us(gap_us);
		t_call[i] = now_ns();
		if (write(fd, rec, recsize) != (ssize_t)recsize) {
			perror("write");
			return -1;
		}
		t_write[i] = now_ns();
		if (!wait_count(&sh->got[i], nfollow)) {
			fprintf(stderr, "record %u: %u of %u followers had it "
					"after 10 s\n",
				i, atomic_load(&sh->got[i]), nfollow);
			return -1;
		}
	}
	close(fd);
	free(rec);
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void report(const char *what, int64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_i64);
	printf("%s p50 %.1f p90 %.1f p99 %.1f max %.1f\n", what,
	       v[n / 2] / 1e3, v[n * 9 / 10] / 1e3, v[n * 99 / 100] / 1e3,
	       v[n - 1] / 1e3);
}

static void usage(void)
{
	fprintf(stderr, "usage: follow-latency [-F followers] [-n records] "
			"[-w warmup] [-g gap_us] [-s record_bytes] [-P] "
			"APPEND_FILE FOLLOW_FILE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	bool procs = false;
	int c;

	while ((c = getopt(argc, argv, "F:n:w:g:s:P")) != -1) {
		switch (c) {
		case 'F': nfollow = (unsigned)atoi(optarg); break;
		case 'n': nrec = (unsigned)atoi(optarg); break;
		case 'w': warmup = (unsigned)atoi(optarg); break;
		case 'g': gap_us = (unsigned)atoi(optarg); break;
		case 's': recsize = (size_t)atoi(optarg); break;
		case 'P': procs = true; break;
		default: usage();
		}
	}
	if (argc - optind != 2 || !nfollow || warmup >= nrec || recsize < 24)
		usage();
	follow_path = argv[optind + 1];

	struct stat st;
	struct rlimit rl;

	if (stat(follow_path, &st) != 0) {
		perror(follow_path);
		return 1;
	}
	start = st.st_size;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < nfollow + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	sh = xmap(sizeof(*sh) + nrec * sizeof(sh->got[0]));
	t_call = xmap(nrec * sizeof(*t_call));
	t_write = xmap(nrec * sizeof(*t_write));
	t_read = xmap((size_t)nfollow * nrec * sizeof(*t_read));

	pthread_t *th = calloc(nfollow, sizeof(*th));
	pid_t *pids = calloc(nfollow, sizeof(*pids));

	for (unsigned i = 0; i < nfollow; i++) {
		if (!procs) {
			pthread_create(&th[i], NULL, follow_thread,
				       (void *)(uintptr_t)i);
			continue;
		}
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(follow(i) ? 1 : 0);
	}
	int rc = 0;

	if (!wait_count(&sh->ready, nfollow)) {
		fprintf(stderr, "followers did not open\n");
		rc = 1;
	}
	/* Let the followers' first reads reach the daemon and park. */
	sleep_us(200000);
	if (rc == 0 && produce(argv[optind]) != 0)
		rc = 1;
	if (rc)
		atomic_store(&sh->failed, 1);
	for (unsigned i = 0; i < nfollow; i++) {
		int ws;

		if (!procs)
			pthread_join(th[i], NULL);
		else if (waitpid(pids[i], &ws, 0) < 0 || !WIFEXITED(ws) ||
			 WEXITSTATUS(ws))
			rc = 1;
	}
	if (rc || atomic_load(&sh->failed))
		return 1;

	size_t n = nrec - warmup, k = 0, early = 0;
	int64_t *per = malloc(n * nfollow * sizeof(*per));
	int64_t *call = malloc(n * nfollow * sizeof(*call));
	int64_t *all = malloc(n * sizeof(*all));
	int64_t *wr = malloc(n * sizeof(*wr));

	for (unsigned r = warmup; r < nrec; r++) {
		int64_t last = 0;

		for (unsigned f = 0; f < nfollow; f++) {
			int64_t t = t_read[(size_t)f * nrec + r];
			int64_t d = t - t_write[r];

			if (d < 0) {
				early++;
				d = 0;
			}
			call[k] = t - t_call[r];
			per[k++] = d;
			if (d > last)
				last = d;
		}
		all[r - warmup] = last;
		wr[r - warmup] = t_write[r] - t_call[r];
	}
	printf("followers %u records %zu record_bytes %zu gap_us %u mode %s\n",
	       nfollow, n, recsize, gap_us, procs ? "processes" : "threads");
	report("per_read", per, k);
	report("all", all, n);
	report("from_call", call, k);
	report("write_call", wr, n);
	printf("early %zu\n", early);
	return 0;
}
