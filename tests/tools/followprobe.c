/*
 * followprobe - probes for the end-to-end tests of .follow files
 * (tests/e2e/follow.bats).  libc and pthreads only.
 *
 *   followprobe wait MODE FILE TIMEOUT_MS [APPEND_FILE DELAY_MS]
 *	Opens FILE, reads it to its current size (those reads must return
 *	at once), then waits for more with MODE:
 *	  poll, select, epoll  readiness for reading, then one read
 *	  block                one blocking read (SIGALRM ends it at the
 *	                       timeout)
 *	  nonblock             FILE is opened O_NONBLOCK: the first read at
 *	                       the end must fail with EAGAIN; then it retries
 *	                       the read every 5 ms until data comes
 *	With APPEND_FILE, a child process appends one line to it DELAY_MS
 *	after the wait began and the probe reports the latency from the
 *	return of that write() to its own wake-up; without, it prints
 *	"ready" when it starts waiting and another process appends.
 *	Prints "woke waited_ms=W lat_us=L bytes=N data=LINE" (exit 0) or
 *	"timeout waited_ms=W" (exit 3).
 *
 *   followprobe eintr FILE
 *	With a SIGINT handler installed without SA_RESTART: reads FILE to
 *	its end, prints "ready", blocks in read() and must get EINTR
 *	("eintr", else exit 1); then prints "again" and blocks once more,
 *	printing "data=LINE" when data comes (the descriptor still works).
 *
 *   followprobe interrupts N FILE
 *	A child process blocks in read() at the end of FILE over and over
 *	with a SIGINT handler (no SA_RESTART) while this process sends it N
 *	SIGINTs at random intervals of 0-2 ms; every read must end with
 *	EINTR (no data is appended meanwhile).  Races the interrupt against
 *	the parking of the read.  Prints "interrupted=K of N".
 *
 *   followprobe pollers N ROUNDS FILE APPEND_FILE
 *	N threads poll() one shared descriptor of FILE (read to its end) at
 *	the same time, with a 1-20 ms timeout, ROUNDS times each: the
 *	daemon sees concurrent POLL requests for one open file.  When all
 *	are done, a child appends a line to APPEND_FILE and every thread,
 *	polling again, must see POLLIN within 5 s.
 *	Prints "woke=K of N".
 *
 *   followprobe many N FILE METRICS APPEND_FILE TIMEOUT_MS [HOLD_FILE]
 *	N threads each open FILE, read to its end and block in read().
 *	Measures stat() latency of FILE and APPEND_FILE before the
 *	followers exist, waits until METRICS (.topicfs/metrics) shows N
 *	parked reads, measures stat() again, prints "parked", waits for
 *	HOLD_FILE to exist if given, then a child process appends one line
 *	and the probe waits for every follower to return it.  Prints the
 *	stat latencies (and their ratio) and the wake-up spread; exit 0 only
 *	if all N followers got exactly the appended line within TIMEOUT_MS.
 *
 * Exit status: 0 as described, 1 on a failed check, 2 on usage, 3 on a
 * timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUFSZ 65536

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stdout, "error: ");
	vfprintf(stdout, fmt, ap);
	fprintf(stdout, "\n");
	va_end(ap);
	exit(1);
}

static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static void on_signal(int sig)
{
	(void)sig;
}

/* Installs a handler without SA_RESTART, so a blocked read gets EINTR. */
static void catch_signal(int sig)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0)
		die("sigaction: %s", strerror(errno));
}

/* Opens path and reads it to its current size; every read must return at
 * once, as on the plain file.  Returns the descriptor. */
static int open_at_end(const char *path, int flags)
{
	char buf[BUFSZ];
	struct stat st;
	off_t pos = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | flags);

	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0)
		die("fstat %s: %s", path, strerror(errno));
	while (pos < st.st_size) {
		size_t want = (size_t)(st.st_size - pos) < sizeof(buf) ?
				      (size_t)(st.st_size - pos) :
				      sizeof(buf);
		ssize_t n = read(fd, buf, want);

		if (n <= 0)
			die("read below the end of %s at %lld: %s", path,
			    (long long)pos, n ? strerror(errno) : "EOF");
		pos += n;
	}
	return fd;
}

/* Shared with the appending child: when its write() returned. */
static _Atomic int64_t *shared_time(void)
{
	void *p = mmap(NULL, sizeof(int64_t), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	return p;
}

/* Forks a child that appends line to path after delay_ms and stores the
 * time its write() returned in *t. */
static pid_t spawn_appender(const char *path, int delay_ms, const char *line,
			    _Atomic int64_t *t)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid > 0)
		return pid;
	sleep_ms(delay_ms);
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);

	if (fd < 0 || write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		_exit(1);
	atomic_store(t, now_ns());
	close(fd);
	_exit(0);
}

static int reap(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return 0;
}

/* Prints a line read from the file without its newline. */
static void print_data(const char *what, const char *buf, ssize_t n,
		       int64_t waited, int64_t lat)
{
	int len = (int)n;

	if (len > 0 && buf[len - 1] == '\n')
		len--;
	say("%s waited_ms=%.1f lat_us=%.0f bytes=%zd data=%.*s", what,
	    waited / 1e6, lat / 1e3, n, len, buf);
}

/* --- wait -------------------------------------------------------------- */

enum mode { M_POLL, M_SELECT, M_EPOLL, M_BLOCK, M_NONBLOCK };

/* Waits for readiness.  Returns 1 ready, 0 timeout. */
static int wait_ready(enum mode m, int fd, int timeout_ms)
{
	int rc;

	switch (m) {
	case M_POLL: {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		rc = poll(&p, 1, timeout_ms);
		if (rc < 0)
			die("poll: %s", strerror(errno));
		if (rc && !(p.revents & POLLIN))
			die("poll: revents 0x%x without POLLIN", p.revents);
		return rc;
	}
	case M_SELECT: {
		fd_set r;
		struct timeval tv = { timeout_ms / 1000,
				      (timeout_ms % 1000) * 1000 };

		FD_ZERO(&r);
		FD_SET(fd, &r);
		rc = select(fd + 1, &r, NULL, NULL, &tv);
		if (rc < 0)
			die("select: %s", strerror(errno));
		return rc > 0 && FD_ISSET(fd, &r);
	}
	case M_EPOLL: {
		struct epoll_event ev = { .events = EPOLLIN }, out;
		int ep = epoll_create1(EPOLL_CLOEXEC);

		if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
			die("epoll: %s", strerror(errno));
		rc = epoll_wait(ep, &out, 1, timeout_ms);
		if (rc < 0)
			die("epoll_wait: %s", strerror(errno));
		close(ep);
		return rc;
	}
	default:
		return 1;
	}
}

static int cmd_wait(int argc, char **argv)
{
	static const char *const names[] = { "poll", "select", "epoll",
					     "block", "nonblock" };
	char buf[BUFSZ];
	enum mode m = M_POLL;
	bool found = false;
	_Atomic int64_t *tw = shared_time();
	pid_t child = 0;
	ssize_t n = -1;

	if (argc != 3 && argc != 5)
		return 2;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(argv[0], names[i])) {
			m = (enum mode)i;
			found = true;
		}
	if (!found)
		return 2;
	const char *path = argv[1];
	int timeout_ms = atoi(argv[2]);
	int fd = open_at_end(path, m == M_NONBLOCK ? O_NONBLOCK : 0);

	if (m == M_NONBLOCK) {
		n = read(fd, buf, sizeof(buf));
		if (n >= 0 || errno != EAGAIN)
			die("O_NONBLOCK read at the end returned %zd (%s), "
			    "not EAGAIN", n, n < 0 ? strerror(errno) : "data");
		say("eagain");
	}
	int64_t t0 = now_ns(), deadline = t0 + (int64_t)timeout_ms * 1000000;

	if (argc == 5) {
		char line[64];

		snprintf(line, sizeof(line), "appended by %d\n", (int)getpid());
		child = spawn_appender(argv[3], atoi(argv[4]), line, tw);
	} else {
		say("ready");
	}
	switch (m) {
	case M_BLOCK:
		catch_signal(SIGALRM);
		alarm((unsigned)(timeout_ms + 999) / 1000);
		n = read(fd, buf, sizeof(buf));
		alarm(0);
		if (n < 0 && errno != EINTR)
			die("read: %s", strerror(errno));
		break;
	case M_NONBLOCK:
		while ((n = read(fd, buf, sizeof(buf))) < 0 &&
		       errno == EAGAIN && now_ns() < deadline)
			sleep_ms(5);
		if (n < 0 && errno != EAGAIN)
			die("read: %s", strerror(errno));
		break;
	default:
		if (wait_ready(m, fd, timeout_ms)) {
			/* Readable: this read must not block. */
			int fl = fcntl(fd, F_GETFL);

			fcntl(fd, F_SETFL, fl | O_NONBLOCK);
			n = read(fd, buf, sizeof(buf));
			if (n < 0)
				die("read after %s said readable: %s",
				    argv[0], strerror(errno));
		}
		break;
	}
	int64_t t1 = now_ns();

	if (child && reap(child) != 0)
		die("the appending child failed");
	if (n == 0)
		die("read returned end of file");
	if (n < 0) {
		say("timeout waited_ms=%.1f", (t1 - t0) / 1e6);
		return 3;
	}
	print_data("woke", buf, n, t1 - t0, child ? t1 - atomic_load(tw) : 0);
	return 0;
}

/* --- eintr ------------------------------------------------------------- */

static int cmd_eintr(int argc, char **argv)
{
	char buf[BUFSZ];
	ssize_t n;

	if (argc != 1)
		return 2;
	catch_signal(SIGINT);
	int fd = open_at_end(argv[0], 0);

	say("ready");
	n = read(fd, buf, sizeof(buf));
	if (n >= 0 || errno != EINTR)
		die("blocked read returned %zd (%s), not EINTR", n,
		    n < 0 ? strerror(errno) : "data");
	say("eintr");
	say("again");
	do
		n = read(fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		die("read after EINTR: %s", n ? strerror(errno) : "EOF");
	print_data("woke", buf, n, 0, 0);
	return 0;
}

/* --- interrupts -------------------------------------------------------- */

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int cmd_interrupts(int argc, char **argv)
{
	_Atomic int64_t *count = shared_time();
	struct sigaction sa;
	int st;

	if (argc != 2)
		return 2;
	int n = atoi(argv[0]);
	int fd = open_at_end(argv[1], 0);
	pid_t pid = fork();

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		char buf[256];

		catch_signal(SIGINT);
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_stop;
		sigaction(SIGUSR1, &sa, NULL);
		while (!stop_flag) {
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r >= 0 || errno != EINTR) {
				printf("error: read returned %zd (%s)\n", r,
				       r < 0 ? strerror(errno) : "data");
				_exit(1);
			}
			atomic_fetch_add(count, 1);
		}
		_exit(0);
	}
	srand((unsigned)getpid());
	sleep_ms(50);
	for (int i = 0; i < n; i++) {
		struct timespec ts = { 0, (rand() % 2000) * 1000L };

		nanosleep(&ts, NULL);
		kill(pid, SIGINT);
	}
	sleep_ms(20);
	/* The child may be outside read() when it comes: repeat. */
	while (waitpid(pid, &st, WNOHANG) == 0) {
		kill(pid, SIGUSR1);
		kill(pid, SIGINT);
		sleep_ms(5);
	}
	say("interrupted=%lld of %d", (long long)atomic_load(count), n);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

/* --- pollers ------------------------------------------------------------ */

struct pollers {
	int fd, rounds;
	_Atomic int done, woke;		/* threads past their rounds; woken */
};

static void *poller(void *arg)
{
	struct pollers *pl = arg;
	struct pollfd p = { .fd = pl->fd, .events = POLLIN };
	unsigned seed = (unsigned)(uintptr_t)&p;

	for (int i = 0; i < pl->rounds; i++) {
		if (poll(&p, 1, 1 + (int)(rand_r(&seed) % 20)) < 0)
			die("poll: %s", strerror(errno));
		if (p.revents)
			die("poll: revents 0x%x before any append", p.revents);
	}
	atomic_fetch_add(&pl->done, 1);
	if (poll(&p, 1, 5000) == 1 && (p.revents & POLLIN))
		atomic_fetch_add(&pl->woke, 1);
	return NULL;
}

static int cmd_pollers(int argc, char **argv)
{
	struct pollers pl = { 0 };
	_Atomic int64_t *tw = shared_time();

	if (argc != 4)
		return 2;
	int n = atoi(argv[0]);
	pthread_t *th = calloc((size_t)n, sizeof(*th));

	pl.rounds = atoi(argv[1]);
	pl.fd = open_at_end(argv[2], 0);
	for (int i = 0; i < n; i++)
		pthread_create(&th[i], NULL, poller, &pl);
	/* The append comes once every thread has done its rounds. */
	int64_t deadline = now_ns() + 60 * 1000000000LL;

	while (atomic_load(&pl.done) < n && now_ns() < deadline)
		sleep_ms(5);
	sleep_ms(50);
	if (reap(spawn_appender(argv[3], 0, "for the pollers\n", tw)) != 0)
		die("the appending child failed");
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	free(th);
	say("woke=%d of %d", atomic_load(&pl.woke), n);
	return atomic_load(&pl.woke) == n ? 0 : 1;
}

/* --- many -------------------------------------------------------------- */

struct many {
	const char *path;
	const char *expect;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	unsigned started, woke, wrong;	/* (mu) */
	int64_t first, last;		/* (mu) wake-up times */
};

static void *follower(void *arg)
{
	struct many *m = arg;
	char buf[256];
	int fd = open_at_end(m->path, 0);
	ssize_t n;

	pthread_mutex_lock(&m->mu);
	m->started++;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->mu);
	do
		n = read(fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	int64_t t = now_ns();

	pthread_mutex_lock(&m->mu);
	if (n != (ssize_t)strlen(m->expect) || memcmp(buf, m->expect, n))
		m->wrong++;
	if (!m->woke || t < m->first)
		m->first = t;
	if (t > m->last)
		m->last = t;
	m->woke++;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->mu);
	close(fd);
	return NULL;
}

static long metric(const char *path, const char *name)
{
	char buf[65536], *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	size_t len = strlen(name);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	for (p = buf; (p = strstr(p, name)); p += len)
		if ((p == buf || p[-1] == '\n') && p[len] == ' ')
			return atol(p + len + 1);
	return -1;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

struct stat_lat {
	double p50_us, p99_us, max_us;
};

/* Times `rounds` stat() calls on each path; AT_STATX_FORCE_SYNC makes
 * sure each one reaches the daemon. */
static struct stat_lat time_stats(const char *const *paths, int npaths,
				  int rounds)
{
	int total = rounds * npaths, k = 0;
	int64_t *v = calloc((size_t)total, sizeof(*v));
	struct statx stx;
	struct stat_lat r;

	for (int i = 0; i < rounds; i++)
		for (int j = 0; j < npaths; j++) {
			int64_t t = now_ns();

			if (statx(AT_FDCWD, paths[j], AT_STATX_FORCE_SYNC,
				  STATX_BASIC_STATS, &stx) != 0)
				die("stat %s: %s", paths[j], strerror(errno));
			v[k++] = now_ns() - t;
		}
	qsort(v, (size_t)total, sizeof(*v), cmp_i64);
	r.p50_us = v[total / 2] / 1e3;
	r.p99_us = v[total * 99 / 100] / 1e3;
	r.max_us = v[total - 1] / 1e3;
	free(v);
	return r;
}

static void raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static int cmd_many(int argc, char **argv)
{
	struct many m = { .path = argv[1] };
	const char *paths[2] = { argv[1], argv[3] };
	_Atomic int64_t *tw = shared_time();
	pthread_attr_t attr;
	char line[64];

	if (argc != 5 && argc != 6)
		return 2;
	unsigned n = (unsigned)atoi(argv[0]);
	const char *metrics = argv[2];
	int timeout_ms = atoi(argv[4]);
	int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
	pthread_t *th = calloc(n, sizeof(*th));

	snprintf(line, sizeof(line), "wake all %d\n", (int)getpid());
	m.expect = line;
	pthread_mutex_init(&m.mu, NULL);
	pthread_cond_init(&m.cond, NULL);
	raise_nofile(n + 64);
	struct stat_lat base = time_stats(paths, 2, 500);

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&th[i], &attr, follower, &m) != 0)
			die("pthread_create %u: %s", i, strerror(errno));
	for (long parked = 0; parked < (long)n;) {
		if (now_ns() > deadline) {
			say("timeout parked=%ld of %u", parked, n);
			return 3;
		}
		sleep_ms(20);
		parked = metric(metrics, "topicfs_parked_reads");
	}
	struct stat_lat busy = time_stats(paths, 2, 500);

	say("stat_idle p50_us=%.1f p99_us=%.1f max_us=%.1f", base.p50_us,
	    base.p99_us, base.max_us);
	say("stat_parked p50_us=%.1f p99_us=%.1f max_us=%.1f", busy.p50_us,
	    busy.p99_us, busy.max_us);
	say("stat_ratio p50=%.2f p99=%.2f", busy.p50_us / base.p50_us,
	    busy.p99_us / base.p99_us);
	say("parked %u", n);
	if (argc == 6)
		while (access(argv[5], F_OK) != 0) {
			if (now_ns() > deadline) {
				say("timeout waiting for %s", argv[5]);
				return 3;
			}
			sleep_ms(10);
		}
	pid_t child = spawn_appender(argv[3], 0, line, tw);

	if (reap(child) != 0)
		die("the appending child failed");
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (deadline - now_ns()) / 1000000000 + 1;
	pthread_mutex_lock(&m.mu);
	while (m.woke < n &&
	       pthread_cond_timedwait(&m.cond, &m.mu, &ts) != ETIMEDOUT)
		;
	unsigned woke = m.woke, wrong = m.wrong;
	int64_t first = m.first - atomic_load(tw), last = m.last - atomic_load(tw);

	pthread_mutex_unlock(&m.mu);
	say("woke %u of %u wrong=%u first_ms=%.2f last_ms=%.2f", woke, n,
	    wrong, first / 1e6, last / 1e6);
	if (woke < n)
		return 3;	/* exit() ends the followers still blocked */
	for (unsigned i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	free(th);
	return wrong ? 1 : 0;
}

int main(int argc, char **argv)
{
	int rc = 2;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "wait"))
		rc = cmd_wait(argc - 2, argv + 2);
	else if (argc >= 2 && !strcmp(argv[1], "eintr"))
		rc = cmd_eintr(argc - 2, argv + 2);
	else if (argc >= 2 && !strcmp(argv[1], "interrupts"))
		rc = cmd_interrupts(argc - 2, argv + 2);
	else if (argc >= 2 && !strcmp(argv[1], "pollers"))
		rc = cmd_pollers(argc - 2, argv + 2);
	else if (argc >= 2 && !strcmp(argv[1], "many"))
		rc = cmd_many(argc - 2, argv + 2);
	if (rc == 2)
		fprintf(stderr, "usage: followprobe wait|eintr|interrupts|pollers|many ... "
				"(see the comment at the top of "
				"tests/tools/followprobe.c)\n");
	return rc;
}
