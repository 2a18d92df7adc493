/*
 * testhttp.h - a tiny HTTP/1.1 server for the unit tests of the HTTP
 * client and of what runs on it: one thread, poll(), a listening socket
 * on 127.0.0.1 with a port the kernel picks.  It reads requests with a
 * Content-Length body (what libcurl sends), passes each to the test's
 * handler and keeps connections alive.  It counts the connections it
 * accepted and the requests it saw, so tests can check connection reuse
 * and wait (with a deadline) until a request arrived.
 *
 * Not a general server: no chunked request bodies, no pipelining beyond
 * what arrives in order on one connection.
 */
#ifndef TFS_TESTHTTP_H
#define TFS_TESTHTTP_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TH_MAX_CONNS 600
#define TH_MAX_REQ (4 << 20)

struct th_req {
	char method[16];
	char path[256];
	const char *body;
	size_t body_len;
	int conn_id;			/* 1, 2, ... in order of accept */
};

enum th_action {
	TH_KEEP,	/* answered; keep the connection for the next request */
	TH_HANG,	/* never answer; keep the connection until the end */
	TH_CLOSE,	/* close the connection now */
};

struct th_conn {
	int fd, id;
	bool hanging;
	char *in;
	size_t len, cap;
};

struct th_server;
typedef enum th_action (*th_handler)(struct th_server *s, int fd,
				     const struct th_req *rq);

struct th_server {
	int lfd, wake[2];
	unsigned short port;
	pthread_t thread;
	th_handler handler;
	void *priv;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int accepted, requests;		/* (lock) */
	bool stop;			/* (lock) */
	struct th_conn conns[TH_MAX_CONNS];
	int nconns;
};

/* Writes all of p; false if the peer went away. */
static inline bool th_write(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		c += w;
		n -= (size_t)w;
	}
	return true;
}

/* A whole response with Content-Length; extra is "Name: v\r\n" lines. */
static inline bool th_reply(int fd, int status, const char *extra,
			    const void *body, size_t len)
{
	char head[1024];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n",
			 status, len, extra ? extra : "");

	return th_write(fd, head, (size_t)n) && th_write(fd, body, len);
}

/* A chunked response: the head, then th_chunk() each piece, then
 * th_chunk(fd, NULL, 0) for the end. */
static inline bool th_chunked_head(int fd, int status)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n\r\n",
			 status);

	return th_write(fd, head, (size_t)n);
}

static inline bool th_chunk(int fd, const void *p, size_t len)
{
	char h[32];
	int n = snprintf(h, sizeof(h), "%zx\r\n", len);

	return th_write(fd, h, (size_t)n) && th_write(fd, p, len) &&
	       th_write(fd, "\r\n", 2);
}

static inline void th_conn_close(struct th_server *s, int i)
{
	close(s->conns[i].fd);
	free(s->conns[i].in);
	s->conns[i] = s->conns[--s->nconns];
}

/* Length of the whole request at the start of buf, or 0 if incomplete,
 * or -1 if it is not one we understand. */
static inline long th_parse(const char *buf, size_t len, struct th_req *rq)
{
	const char *eoh = memmem(buf, len, "\r\n\r\n", 4);
	size_t hlen, clen = 0;

	if (!eoh)
		return len > 65536 ? -1 : 0;
	hlen = (size_t)(eoh - buf) + 4;
	if (sscanf(buf, "%15s %255s", rq->method, rq->path) != 2)
		return -1;
	for (const char *p = buf; p && p < eoh;
	     p = memchr(p, '\n', (size_t)(eoh - p))) {
		if (*p == '\n')
			p++;
		if (strncasecmp(p, "Content-Length:", 15) == 0)
			clen = strtoul(p + 15, NULL, 10);
		if (strncasecmp(p, "Transfer-Encoding:", 18) == 0)
			return -1;
	}
	if (hlen + clen > TH_MAX_REQ)
		return -1;
	if (len < hlen + clen)
		return 0;
	rq->body = buf + hlen;
	rq->body_len = clen;
	return (long)(hlen + clen);
}

/* Handles every complete request buffered on connection i; false when
 * the connection must close. */
static inline bool th_serve(struct th_server *s, int i)
{
	struct th_conn *cn = &s->conns[i];

	while (!cn->hanging) {
		struct th_req rq;
		long n;

		memset(&rq, 0, sizeof(rq));
		n = th_parse(cn->in, cn->len, &rq);
		if (n < 0 || (n == 0 && cn->len >= TH_MAX_REQ))
			return false;
		if (n == 0)
			return true;
		rq.conn_id = cn->id;
		pthread_mutex_lock(&s->lock);
		s->requests++;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		enum th_action a = s->handler(s, cn->fd, &rq);
		if (a == TH_CLOSE)
			return false;
		if (a == TH_HANG)
			cn->hanging = true;
		memmove(cn->in, cn->in + n, cn->len - (size_t)n);
		cn->len -= (size_t)n;
	}
	return true;
}

static inline void th_accept(struct th_server *s)
{
	int fd = accept(s->lfd, NULL, NULL);

	if (fd < 0)
		return;
	if (s->nconns == TH_MAX_CONNS) {
		close(fd);
		return;
	}
	pthread_mutex_lock(&s->lock);
	s->conns[s->nconns] = (struct th_conn){ .fd = fd, .id = ++s->accepted };
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	s->nconns++;
}

static inline void *th_main(void *arg)
{
	struct th_server *s = arg;
	static struct pollfd pf[TH_MAX_CONNS + 2];

	for (;;) {
		int n = 0;

		pf[n++] = (struct pollfd){ .fd = s->wake[0], .events = POLLIN };
		pf[n++] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
		for (int i = 0; i < s->nconns; i++)
			pf[n++] = (struct pollfd){ .fd = s->conns[i].fd,
						   .events = POLLIN };
		if (poll(pf, (nfds_t)n, -1) < 0 && errno != EINTR)
			break;
		if (pf[0].revents)
			break;
		/* Walk down so closing conns[i] moves only checked ones. */
		for (int i = s->nconns - 1; i >= 0; i--) {
			struct th_conn *cn = &s->conns[i];
			ssize_t r;

			if (!pf[i + 2].revents)
				continue;
			if (cn->len == cn->cap) {
				cn->cap = cn->cap ? 2 * cn->cap : 4096;
				cn->in = realloc(cn->in, cn->cap);
			}
			r = recv(cn->fd, cn->in + cn->len, cn->cap - cn->len,
				 0);
			if (r <= 0) {
				th_conn_close(s, i);
				continue;
			}
			if (cn->hanging)
				continue;	/* drop what it sends */
			cn->len += (size_t)r;
			if (!th_serve(s, i))
				th_conn_close(s, i);
		}
		if (pf[1].revents)
			th_accept(s);
	}
	while (s->nconns)
		th_conn_close(s, s->nconns - 1);
	return NULL;
}

/* Starts a server; returns it, or NULL (and says why). */
static inline struct th_server *th_start(th_handler h, void *priv)
{
	struct th_server *s = calloc(1, sizeof(*s));
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);

	s->handler = h;
	s->priv = priv;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(s->lfd, 512) ||
	    getsockname(s->lfd, (struct sockaddr *)&a, &alen) ||
	    pipe(s->wake) || pthread_create(&s->thread, NULL, th_main, s)) {
		perror("testhttp: cannot start the server");
		exit(1);
	}
	s->port = ntohs(a.sin_port);
	return s;
}

static inline void th_stop(struct th_server *s)
{
	if (write(s->wake[1], "x", 1) != 1)
		perror("testhttp: wake");
	pthread_join(s->thread, NULL);
	close(s->lfd);
	close(s->wake[0]);
	close(s->wake[1]);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

static inline int th_accepted(struct th_server *s)
{
	pthread_mutex_lock(&s->lock);
	int n = s->accepted;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static inline int th_requests(struct th_server *s)
{
	pthread_mutex_lock(&s->lock);
	int n = s->requests;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Waits until the server saw at least n requests, for at most ms;
 * returns whether it did. */
static inline bool th_wait_requests(struct th_server *s, int n, int ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->lock);
	while (s->requests < n &&
	       pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
		;
	ok = s->requests >= n;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

/* A port where nothing listens: bound (so nobody else takes it) but not
 * listening, so a connect is refused.  Close *fd at the end. */
static inline unsigned short th_refusing_port(int *fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*fd < 0 || bind(*fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(*fd, (struct sockaddr *)&a, &alen)) {
		perror("testhttp: refusing port");
		exit(1);
	}
	return ntohs(a.sin_port);
}

#endif
