/*
 * testetcd.h - a real etcd for unit tests, one member or several: free
 * ports on 127.0.0.1, a data folder per member, started and stopped by
 * PID, ready when GET /health says {"health":"true"}, every wait bounded.
 * Members use --heartbeat-interval 50 --election-timeout 500 (1 s
 * leases, quick elections).  The etcd
 * binary is found on PATH (or TFS_ETCD); if it is missing the caller
 * fails and says so: contrib/install-deps.sh installs etcd-server.
 *
 * The member dies with the test program (PR_SET_PDEATHSIG), so a crashed
 * test leaves no etcd behind.
 */
#ifndef TFS_TESTETCD_H
#define TFS_TESTETCD_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TE_START_MS 20000
#define TE_STOP_MS 10000

struct te_etcd {
	pid_t pid;			/* 0 when not running */
	char dir[64];			/* /tmp/tfs-etcd-XXXXXX */
	char name[8];			/* n1, n2... */
	unsigned short client_port, peer_port;
	char url[64];			/* http://127.0.0.1:client_port */
	char cluster[256];		/* --initial-cluster */
};

static inline long te_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void te_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* A port nothing listens on right now (the kernel's pick). */
static inline unsigned short te_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unsigned short port = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* The etcd binary: $TFS_ETCD, or etcd found on PATH; NULL if neither. */
static inline const char *te_binary(void)
{
	static char found[512];
	const char *env = getenv("TFS_ETCD"), *path = getenv("PATH");

	if (env && *env)
		return access(env, X_OK) == 0 ? env : NULL;
	while (path && *path) {
		size_t n = strcspn(path, ":");
		snprintf(found, sizeof(found), "%.*s/etcd", (int)n, path);
		if (n && access(found, X_OK) == 0)
			return found;
		path += n + (path[n] == ':');
	}
	return NULL;
}

/* One GET /health: does it say {"health":"true"}? */
static inline bool te_healthy(unsigned short port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port) };
	struct timeval tv = { 1, 0 };
	char buf[2048];
	size_t got = 0;
	ssize_t r;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = false;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		const char *req =
			"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
		size_t max = sizeof(buf) - 1;

		if (write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
			while (got < max &&
			       (r = read(fd, buf + got, max - got)) > 0)
				got += (size_t)r;
			buf[got] = '\0';
			ok = strstr(buf, "\"health\":\"true\"") != NULL;
		}
	}
	close(fd);
	return ok;
}

static inline void te_print_log(const struct te_etcd *e)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "tail -20 %s/etcd.log >&2", e->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "(no etcd log)\n");
}

/* Reaps e->pid if it exited; true if it did. */
static inline bool te_exited(struct te_etcd *e)
{
	int st;

	if (e->pid && waitpid(e->pid, &st, WNOHANG) == e->pid) {
		e->pid = 0;
		return true;
	}
	return e->pid == 0;
}

/* Runs the member in the background; sets e->pid.  0 or -1. */
static inline int te_spawn(struct te_etcd *e, const char *bin)
{
	char data[96], log[96], curl[64], purl[64];
	pid_t pid;

	snprintf(data, sizeof(data), "%s/data", e->dir);
	snprintf(log, sizeof(log), "%s/etcd.log", e->dir);
	snprintf(curl, sizeof(curl), "http://127.0.0.1:%u", e->client_port);
	snprintf(purl, sizeof(purl), "http://127.0.0.1:%u", e->peer_port);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return -1;
	}
	if (pid > 0) {
		e->pid = pid;
		return 0;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	execl(bin, bin, "--name", e->name, "--data-dir", data,
	      "--listen-client-urls", curl, "--advertise-client-urls", curl,
	      "--listen-peer-urls", purl, "--initial-advertise-peer-urls",
	      purl, "--initial-cluster", e->cluster, "--heartbeat-interval",
	      "50", "--election-timeout", "500", "--log-level", "warn",
	      (char *)NULL);
	_exit(127);
}

/* A new folder and new ports for member name.  0 or -1. */
static inline int te_prepare(struct te_etcd *e, const char *name)
{
	snprintf(e->dir, sizeof(e->dir), "/tmp/tfs-etcd-XXXXXX");
	if (!mkdtemp(e->dir)) {
		perror("mkdtemp");
		e->dir[0] = '\0';
		return -1;
	}
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->client_port = te_free_port();
	e->peer_port = te_free_port();
	snprintf(e->url, sizeof(e->url), "http://127.0.0.1:%u",
		 e->client_port);
	return 0;
}

/* Waits until e is healthy; 0, or -1 after saying why (e is then
 * killed). */
static inline int te_wait_healthy(struct te_etcd *e)
{
	long deadline = te_ms() + TE_START_MS;

	while (te_ms() < deadline && !te_exited(e)) {
		if (te_healthy(e->client_port))
			return 0;
		te_sleep_ms(50);
	}
	fprintf(stderr, "etcd %s (pid %d) did not become healthy on %s\n",
		e->name, (int)e->pid, e->url);
	te_print_log(e);
	if (e->pid) {
		kill(e->pid, SIGKILL);
		waitpid(e->pid, NULL, 0);
		e->pid = 0;
	}
	return -1;
}

static inline void te_remove_dir(struct te_etcd *e)
{
	char cmd[96];

	if (!e->dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", e->dir);
	e->dir[0] = '\0';
}

static inline const char *te_need_binary(void)
{
	const char *bin = te_binary();

	if (!bin)
		fprintf(stderr, "etcd not found (PATH or TFS_ETCD): install "
				"etcd-server (contrib/install-deps.sh)\n");
	return bin;
}

/*
 * Starts a one-member etcd: the first time in a new folder on new ports,
 * later again on the same folder and ports (a restart).  Waits until
 * healthy.  Returns 0, or -1 after saying why on stderr.
 */
static inline int te_start(struct te_etcd *e)
{
	const char *bin = te_need_binary();

	if (!bin)
		return -1;
	if (e->dir[0])
		return te_spawn(e, bin) ? -1 : te_wait_healthy(e);
	/* A port taken meanwhile by someone else: try again on new ones. */
	for (int attempt = 0; attempt < 3; attempt++) {
		if (te_prepare(e, "n1"))
			return -1;
		snprintf(e->cluster, sizeof(e->cluster),
			 "n1=http://127.0.0.1:%u", e->peer_port);
		if (te_spawn(e, bin) == 0 && te_wait_healthy(e) == 0)
			return 0;
		te_remove_dir(e);
	}
	return -1;
}

static inline void te_cleanup(struct te_etcd *e);

/*
 * Starts a cluster of n members m[0..n) (names n1...), each in its own
 * folder; waits until every one is healthy.  0, or -1 after saying why
 * (whatever started is then stopped and removed).
 */
static inline int te_start_cluster(struct te_etcd *m, int n)
{
	const char *bin = te_need_binary();
	char cluster[256] = "";
	int i;

	if (!bin)
		return -1;
	for (i = 0; i < n; i++) {
		char name[8];
		size_t len = strlen(cluster);

		snprintf(name, sizeof(name), "n%d", i + 1);
		if (te_prepare(&m[i], name))
			goto out_fail;
		snprintf(cluster + len, sizeof(cluster) - len,
			 "%sn%d=http://127.0.0.1:%u", i ? "," : "", i + 1,
			 m[i].peer_port);
	}
	for (i = 0; i < n; i++) {
		snprintf(m[i].cluster, sizeof(m[i].cluster), "%s", cluster);
		if (te_spawn(&m[i], bin))
			goto out_fail;
	}
	for (i = 0; i < n; i++)
		if (te_wait_healthy(&m[i]))
			goto out_fail;
	return 0;

out_fail:
	for (i = 0; i < n; i++)
		te_cleanup(&m[i]);
	return -1;
}

/* Stops the member by PID (SIGTERM, then SIGKILL after a deadline). */
static inline void te_stop(struct te_etcd *e)
{
	long deadline = te_ms() + TE_STOP_MS;

	if (!e->pid)
		return;
	kill(e->pid, SIGTERM);
	while (!te_exited(e) && te_ms() < deadline)
		te_sleep_ms(20);
	if (e->pid) {
		fprintf(stderr, "etcd (pid %d) ignored SIGTERM; killing it\n",
			(int)e->pid);
		kill(e->pid, SIGKILL);
		waitpid(e->pid, NULL, 0);
		e->pid = 0;
	}
}

/* Stops the member and removes its folder. */
static inline void te_cleanup(struct te_etcd *e)
{
	te_stop(e);
	te_remove_dir(e);
}

#endif
