/*
 * Unit tests for peer authentication: known-answer vectors computed with
 * the openssl command line (not with the module), sign/verify round
 * trips, every tampered field, the clock window at its boundaries,
 * replays and the replay cache's bound and expiry, malformed headers,
 * several threads at once, and loading the secret file.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "check.h"
#include "err.h"
#include "log.h"
#include "util.h"

#define SECRET "topicfs test secret, 32 bytes!!"	/* 31 bytes */
#define T0 1700000000000LL

/*
 * Vectors made at test-writing time with
 *   B=$(printf 'hello\n' | openssl dgst -sha256 -r | cut -d' ' -f1)
 *   printf 'topicfs-v1\nPOST\n/v1/p/tweets/0/append?x=1\n7\n1700000000000\n0123456789abcdef\n%s' "$B" |
 *     openssl dgst -sha256 -hmac 'topicfs test secret, 32 bytes!!' -r
 * and the same for GET /v1/fetch, node 4294967295, time 0, nonce
 * ffffffffffffffff and an empty body (digest e3b0c442...b855).
 */
#define KAT1_MAC "d1f0a7a8ef9cdacfd61e4fe4a0d23c3dd6ef395549c601d489fa774eb963bbf6"
#define KAT2_MAC "5e54a6a36a36d8d988fb5b19cbca9a7a68c419ec6129ae449d73f983a2d41046"

/* expr is refused with a reason containing `reason` (uses `why`). */
#define REFUSED(expr, reason)                                            \
	do {                                                             \
		why = NULL;                                              \
		CHECK_EQ((expr), TFS_EAUTH);                             \
		CHECKF(why && strstr(why, reason), "%s", why ? why : "-"); \
	} while (0)

static struct tfs_auth *new_auth(const char *secret, uint32_t node)
{
	struct tfs_auth *a = NULL;

	if (tfs_auth_new(secret, strlen(secret), node, &a) != 0)
		return NULL;
	return a;
}

/* The four header values of a signed request. */
struct signed_req {
	struct tfs_auth_headers h;
	const char *node, *time, *nonce, *mac;
};

static const char *value_of(const char *line)
{
	const char *p = strstr(line, ": ");

	return p ? p + 2 : line;
}

static void sign(struct tfs_auth *a, const char *method, const char *target,
		 const void *body, size_t len, int64_t now,
		 struct signed_req *s)
{
	tfs_auth_sign(a, method, target, body, len, now, &s->h);
	s->node = value_of(s->h.node);
	s->time = value_of(s->h.time);
	s->nonce = value_of(s->h.nonce);
	s->mac = value_of(s->h.mac);
}

static int verify(struct tfs_auth *a, const char *method, const char *target,
		  const struct signed_req *s, const void *body, size_t len,
		  int64_t now, uint32_t *from, const char **why)
{
	return tfs_auth_verify(a, method, target, s->node, s->time, s->nonce,
			       s->mac, body, len, now, from, why);
}

static bool is_lower_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

static void test_kat(void)
{
	struct tfs_auth *a = new_auth(SECRET, 1);
	const char *why = "unset";
	uint32_t from = 0;

	TEST("known answer: POST with a body and a query string");
	CHECK(a != NULL);
	if (!a)
		return;
	CHECK_EQ(tfs_auth_verify(a, "POST", "/v1/p/tweets/0/append?x=1", "7",
				 "1700000000000", "0123456789abcdef", KAT1_MAC,
				 "hello\n", 6, T0, &from, &why),
		 0);
	CHECK_EQ(from, 7);
	CHECK(why == NULL);

	TEST("known answer: GET, empty body, extreme node and time");
	CHECK_EQ(tfs_auth_verify(a, "GET", "/v1/fetch", "4294967295", "0",
				 "ffffffffffffffff", KAT2_MAC, NULL, 0, 0,
				 &from, &why),
		 0);
	CHECK_EQ(from, 4294967295u);

	TEST("known answer: the same MAC in capitals is malformed");
	char upper[65];
	for (int i = 0; i < 65; i++)
		upper[i] = (char)(KAT1_MAC[i] >= 'a' ? KAT1_MAC[i] - 32
						      : KAT1_MAC[i]);
	CHECK_EQ(tfs_auth_verify(a, "POST", "/v1/p/tweets/0/append?x=1", "7",
				 "1700000000000", "0123456789abcdef", upper,
				 "hello\n", 6, T0 + 1, &from, &why),
		 TFS_EAUTH);
	CHECK(why && strstr(why, "malformed X-Topicfs-Mac"));
	tfs_auth_free(a);
}

static void test_roundtrip(void)
{
	struct tfs_auth *s = new_auth(SECRET, 3), *r = new_auth(SECRET, 1);
	struct signed_req a, b;
	const char *why;
	uint32_t from = 0;

	TEST("sign: four header lines, canonical values, fresh nonces");
	sign(s, "POST", "/v1/x?y=z", "body", 4, T0, &a);
	sign(s, "POST", "/v1/x?y=z", "body", 4, T0, &b);
	CHECK(strncmp(a.h.lines[0], "X-Topicfs-Node: ", 16) == 0);
	CHECK(strncmp(a.h.lines[1], "X-Topicfs-Time: ", 16) == 0);
	CHECK(strncmp(a.h.lines[2], "X-Topicfs-Nonce: ", 17) == 0);
	CHECK(strncmp(a.h.lines[3], "X-Topicfs-Mac: ", 15) == 0);
	CHECK(a.h.lines[4] == NULL);
	CHECK(strcmp(a.node, "3") == 0);
	CHECK(strcmp(a.time, "1700000000000") == 0);
	CHECK(is_lower_hex(a.nonce, 16));
	CHECK(is_lower_hex(a.mac, 64));
	CHECK(strcmp(a.nonce, b.nonce) != 0);
	CHECK(strcmp(a.mac, b.mac) != 0);

	TEST("verify: a signed request is accepted, sender reported");
	CHECK_EQ(verify(r, "POST", "/v1/x?y=z", &a, "body", 4, T0, &from,
			&why),
		 0);
	CHECK_EQ(from, 3);
	CHECK_EQ(verify(r, "POST", "/v1/x?y=z", &b, "body", 4, T0 + 5, &from,
			&why),
		 0);
	tfs_auth_free(s);
	tfs_auth_free(r);
}

static void test_tampering(void)
{
	struct tfs_auth *s = new_auth(SECRET, 3), *r = new_auth(SECRET, 1);
	struct tfs_auth *other = new_auth("another secret, long enough", 1);
	struct signed_req q;
	const char *why;
	uint32_t from;
	char buf[96];

	sign(s, "POST", "/v1/p/t/0/append", "line\n", 5, T0, &q);

	TEST("tampered: method, target, body");
	REFUSED(verify(r, "PUT", "/v1/p/t/0/append", &q, "line\n", 5, T0,
		       &from, &why),
		"wrong MAC");
	REFUSED(verify(r, "POST", "/v1/p/t/1/append", &q, "line\n", 5, T0,
		       &from, &why),
		"wrong MAC");
	REFUSED(verify(r, "POST", "/v1/p/t/0/append?x", &q, "line\n", 5, T0,
		       &from, &why),
		"wrong MAC");
	REFUSED(verify(r, "POST", "/v1/p/t/0/append", &q, "Line\n", 5, T0,
		       &from, &why),
		"wrong MAC");
	REFUSED(verify(r, "POST", "/v1/p/t/0/append", &q, "line\n", 4, T0,
		       &from, &why),
		"wrong MAC");

	TEST("tampered: node, time, nonce, mac");
	struct signed_req t = q;
	t.node = "4";
	REFUSED(verify(r, "POST", "/v1/p/t/0/append", &t, "line\n", 5, T0,
		       &from, &why),
		"wrong MAC");
	t = q;
	t.time = "1700000000001";
	REFUSED(verify(r, "POST", "/v1/p/t/0/append", &t, "line\n", 5, T0,
		       &from, &why),
		"wrong MAC");
	t = q;
	snprintf(buf, sizeof(buf), "%s", q.nonce);
	buf[5] = buf[5] == '0' ? '1' : '0';
	t.nonce = buf;
	REFUSED(verify(r, "POST", "/v1/p/t/0/append", &t, "line\n", 5, T0,
		       &from, &why),
		"wrong MAC");
	t = q;
	snprintf(buf, sizeof(buf), "%s", q.mac);
	buf[63] = buf[63] == '0' ? '1' : '0';
	t.mac = buf;
	REFUSED(verify(r, "POST", "/v1/p/t/0/append", &t, "line\n", 5, T0,
		       &from, &why),
		"wrong MAC");

	TEST("tampered: another secret");
	REFUSED(verify(other, "POST", "/v1/p/t/0/append", &q, "line\n", 5, T0,
		       &from, &why),
		"wrong MAC");

	TEST("tampered: refusals are not remembered; the original passes");
	CHECK_EQ(verify(r, "POST", "/v1/p/t/0/append", &q, "line\n", 5, T0,
			&from, &why),
		 0);
	tfs_auth_free(s);
	tfs_auth_free(r);
	tfs_auth_free(other);
}

static void test_skew(void)
{
	struct tfs_auth *s = new_auth(SECRET, 2), *r = new_auth(SECRET, 1);
	int64_t offsets[] = { 30000, -30000, 29999, -29999, 0 };
	struct signed_req q;
	const char *why;
	uint32_t from;

	TEST("clock: within 30 s either way, boundaries included");
	for (size_t i = 0; i < TFS_ARRAY_SIZE(offsets); i++) {
		sign(s, "GET", "/v1/fetch", NULL, 0, T0, &q);
		CHECKF(verify(r, "GET", "/v1/fetch", &q, NULL, 0,
			      T0 + offsets[i], &from, &why) == 0,
		       "offset %lld", (long long)offsets[i]);
	}
	TEST("clock: 30.001 s either way is refused");
	sign(s, "GET", "/v1/fetch", NULL, 0, T0, &q);
	REFUSED(verify(r, "GET", "/v1/fetch", &q, NULL, 0, T0 + 30001, &from,
		       &why),
		"30 s");
	REFUSED(verify(r, "GET", "/v1/fetch", &q, NULL, 0, T0 - 30001, &from,
		       &why),
		"30 s");
	TEST("clock: extreme clocks do not overflow");
	REFUSED(verify(r, "GET", "/v1/fetch", &q, NULL, 0, INT64_MAX, &from,
		       &why),
		"30 s");
	REFUSED(verify(r, "GET", "/v1/fetch", &q, NULL, 0, INT64_MIN, &from,
		       &why),
		"30 s");
	REFUSED(tfs_auth_verify(r, "GET", "/v1/fetch", "2",
				"9223372036854775807", q.nonce, q.mac, NULL, 0,
				INT64_MIN, &from, &why),
		"30 s");
	tfs_auth_free(s);
	tfs_auth_free(r);
}

static void test_replay(void)
{
	struct tfs_auth *s = new_auth(SECRET, 2), *r = new_auth(SECRET, 1);
	struct signed_req q, q2;
	const char *why;
	uint32_t from;

	TEST("replay: the same request twice is refused");
	sign(s, "POST", "/v1/p/t/0/append", "x\n", 2, T0, &q);
	CHECK_EQ(verify(r, "POST", "/v1/p/t/0/append", &q, "x\n", 2, T0, &from,
			&why),
		 0);
	REFUSED(verify(r, "POST", "/v1/p/t/0/append", &q, "x\n", 2, T0, &from,
		       &why),
		"replayed");
	REFUSED(verify(r, "POST", "/v1/p/t/0/append", &q, "x\n", 2,
		       T0 + 30000, &from, &why),
		"replayed");
	TEST("replay: after the window it is refused by the clock");
	REFUSED(verify(r, "POST", "/v1/p/t/0/append", &q, "x\n", 2,
		       T0 + 30001, &from, &why),
		"30 s");
	TEST("replay: the same request signed again is accepted");
	sign(s, "POST", "/v1/p/t/0/append", "x\n", 2, T0, &q2);
	CHECK_EQ(verify(r, "POST", "/v1/p/t/0/append", &q2, "x\n", 2, T0,
			&from, &why),
		 0);

	TEST("replay: thousands of entries (the table grows), all remembered");
	enum { N = 5000 };
	static struct signed_req many[N];
	int ok = 0, refused = 0;
	for (int i = 0; i < N; i++) {
		sign(s, "GET", "/v1/fetch", NULL, 0, T0 + i, &many[i]);
		ok += verify(r, "GET", "/v1/fetch", &many[i], NULL, 0, T0 + i,
			     &from, &why) == 0;
	}
	for (int i = 0; i < N; i++)
		refused += verify(r, "GET", "/v1/fetch", &many[i], NULL, 0,
				  T0 + N, &from, &why) == TFS_EAUTH &&
			   strstr(why, "replayed");
	CHECK_EQ(ok, N);
	CHECK_EQ(refused, N);
	tfs_auth_free(s);
	tfs_auth_free(r);
}

static void test_replay_limit(void)
{
	struct tfs_auth *s = new_auth(SECRET, 2), *r = new_auth(SECRET, 1);
	struct signed_req old[2], mid[2], q;
	const char *why;
	uint32_t from;

	TEST("replay cache: full of live entries, new requests are refused");
	tfs_auth_set_replay_limit(r, 4);
	for (int i = 0; i < 2; i++) {
		sign(s, "GET", "/v1/fetch", NULL, 0, T0, &old[i]);
		CHECK_EQ(verify(r, "GET", "/v1/fetch", &old[i], NULL, 0, T0,
				&from, &why),
			 0);
	}
	for (int i = 0; i < 2; i++) {
		sign(s, "GET", "/v1/fetch", NULL, 0, T0 + 20000, &mid[i]);
		CHECK_EQ(verify(r, "GET", "/v1/fetch", &mid[i], NULL, 0,
				T0 + 20000, &from, &why),
			 0);
	}
	sign(s, "GET", "/v1/fetch", NULL, 0, T0 + 20000, &q);
	REFUSED(verify(r, "GET", "/v1/fetch", &q, NULL, 0, T0 + 20000, &from,
		       &why),
		"full");
	TEST("replay cache: a replay is still a replay when full");
	REFUSED(verify(r, "GET", "/v1/fetch", &mid[0], NULL, 0, T0 + 20000,
		       &from, &why),
		"replayed");

	TEST("replay cache: expired entries make room, live ones stay");
	for (int i = 0; i < 2; i++) {
		sign(s, "GET", "/v1/fetch", NULL, 0, T0 + 30001, &q);
		CHECK_EQ(verify(r, "GET", "/v1/fetch", &q, NULL, 0, T0 + 30001,
				&from, &why),
			 0);
	}
	sign(s, "GET", "/v1/fetch", NULL, 0, T0 + 30001, &q);
	REFUSED(verify(r, "GET", "/v1/fetch", &q, NULL, 0, T0 + 30001, &from,
		       &why),
		"full");
	REFUSED(verify(r, "GET", "/v1/fetch", &mid[1], NULL, 0, T0 + 30001,
		       &from, &why),
		"replayed");
	tfs_auth_free(s);
	tfs_auth_free(r);
}

static void test_malformed(void)
{
	struct tfs_auth *s = new_auth(SECRET, 2), *r = new_auth(SECRET, 1);
	struct signed_req q;
	const char *why;
	uint32_t from;

	sign(s, "GET", "/v1/fetch", NULL, 0, T0, &q);
#define TRY(node, time, nonce, mac, reason)                                \
	REFUSED(tfs_auth_verify(r, "GET", "/v1/fetch", node, time, nonce,  \
				mac, NULL, 0, T0, &from, &why),            \
		reason)

	TEST("malformed: missing headers");
	TRY(NULL, q.time, q.nonce, q.mac, "missing X-Topicfs-Node");
	TRY(q.node, NULL, q.nonce, q.mac, "missing X-Topicfs-Time");
	TRY(q.node, q.time, NULL, q.mac, "missing X-Topicfs-Nonce");
	TRY(q.node, q.time, q.nonce, NULL, "missing X-Topicfs-Mac");
	REFUSED(tfs_auth_verify(r, NULL, "/v1/fetch", q.node, q.time, q.nonce,
				q.mac, NULL, 0, T0, &from, &why),
		"method");
	REFUSED(tfs_auth_verify(r, "GET", "", q.node, q.time, q.nonce, q.mac,
				NULL, 0, T0, &from, &why),
		"target");

	TEST("malformed: node ids");
	static const char *nodes[] = { "", "-1", "+2", "02", "4294967296",
				       "99999999999999999999999", "2a", " 2",
				       "2 ", "0x2" };
	for (size_t i = 0; i < TFS_ARRAY_SIZE(nodes); i++)
		TRY(nodes[i], q.time, q.nonce, q.mac,
		    "malformed X-Topicfs-Node");
	TEST("malformed: times");
	static const char *times[] = { "", "-1700000000000", "01700000000000",
				       "1700000000000.0", "9223372036854775808",
				       "18446744073709551616", "1e12",
				       "+1700000000000" };
	for (size_t i = 0; i < TFS_ARRAY_SIZE(times); i++)
		TRY(q.node, times[i], q.nonce, q.mac,
		    "malformed X-Topicfs-Time");
	TEST("malformed: nonces and MACs");
	static const char *nonces[] = { "", "0123456789abcde",
					"0123456789abcdef0", "0123456789ABCDEF",
					"0123456789abcdeg", "0123456789 abcde" };
	for (size_t i = 0; i < TFS_ARRAY_SIZE(nonces); i++)
		TRY(q.node, q.time, nonces[i], q.mac,
		    "malformed X-Topicfs-Nonce");
	char mac[70];
	snprintf(mac, sizeof(mac), "%.63s", q.mac);
	TRY(q.node, q.time, q.nonce, mac, "malformed X-Topicfs-Mac");
	snprintf(mac, sizeof(mac), "%s0", q.mac);
	TRY(q.node, q.time, q.nonce, mac, "malformed X-Topicfs-Mac");
	snprintf(mac, sizeof(mac), "%s", q.mac);
	mac[10] = 'z';
	TRY(q.node, q.time, q.nonce, mac, "malformed X-Topicfs-Mac");
	TRY(q.node, q.time, q.nonce, "", "malformed X-Topicfs-Mac");

	TEST("malformed: none of that was remembered");
	CHECK_EQ(verify(r, "GET", "/v1/fetch", &q, NULL, 0, T0, &from, &why),
		 0);
	tfs_auth_free(s);
	tfs_auth_free(r);
}

struct worker {
	struct tfs_auth *signer, *verifier;
	int id, accepted, replays_refused;
};

static void *verify_thread(void *arg)
{
	struct worker *w = arg;
	char target[64], body[64];
	struct signed_req q;
	const char *why;
	uint32_t from;

	for (int i = 0; i < 500; i++) {
		int n = snprintf(body, sizeof(body), "w%d-%d\n", w->id, i);

		snprintf(target, sizeof(target), "/v1/p/t/%d/append", w->id);
		sign(w->signer, "POST", target, body, (size_t)n, T0 + i, &q);
		if (verify(w->verifier, "POST", target, &q, body, (size_t)n,
			   T0 + i, &from, &why) == 0 &&
		    from == (uint32_t)(10 + w->id % 2))
			w->accepted++;
		if (verify(w->verifier, "POST", target, &q, body, (size_t)n,
			   T0 + i, &from, &why) == TFS_EAUTH &&
		    strstr(why, "replayed"))
			w->replays_refused++;
	}
	return NULL;
}

static void test_threads(void)
{
	struct tfs_auth *s[2] = { new_auth(SECRET, 10), new_auth(SECRET, 11) };
	struct tfs_auth *r = new_auth(SECRET, 1);
	struct worker w[4];
	pthread_t t[4];
	int accepted = 0, refused = 0;

	TEST("threads: 4 threads sign and verify at once on shared objects");
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ s[i % 2], r, i, 0, 0 };
		pthread_create(&t[i], NULL, verify_thread, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		accepted += w[i].accepted;
		refused += w[i].replays_refused;
	}
	CHECK_EQ(accepted, 2000);
	CHECK_EQ(refused, 2000);
	tfs_auth_free(s[0]);
	tfs_auth_free(s[1]);
	tfs_auth_free(r);
}

static int write_file(const char *path, const char *text, size_t len,
		      mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	bool ok;

	if (fd < 0)
		return -1;
	ok = write(fd, text, len) == (ssize_t)len;
	fchmod(fd, mode);
	close(fd);
	return ok ? 0 : -1;
}

/* Runs tfs_auth_load with stderr captured into log (NUL-terminated). */
static int load_logged(const char *path, struct tfs_auth **a, char *log,
		       size_t len)
{
	char tmp[] = "/tmp/tfs-auth-log-XXXXXX";
	int fd = mkstemp(tmp), saved = dup(2), rc;
	ssize_t n;

	fflush(stderr);
	dup2(fd, 2);
	rc = tfs_auth_load(path, 1, a);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, log, len - 1, 0);
	log[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(tmp);
	return rc;
}

/* Does a accept what b signs? */
static bool same_secret(struct tfs_auth *a, struct tfs_auth *b)
{
	struct signed_req q;
	const char *why;
	uint32_t from;

	sign(b, "GET", "/x", NULL, 0, T0, &q);
	return verify(a, "GET", "/x", &q, NULL, 0, T0, &from, &why) == 0;
}

static void test_load(void)
{
	char dir[] = "/tmp/tfs-auth-XXXXXX", path[64], log[4096];
	struct tfs_auth *a = NULL, *ref = new_auth(SECRET, 2);
	enum tfs_log_level level = tfs_log_get_level();

	if (!mkdtemp(dir)) {
		CHECKF(0, "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/secret", dir);
	tfs_log_set_level(TFS_LOG_WARN);

	TEST("load: one trailing newline stripped, mode 600 silent");
	CHECK_EQ(write_file(path, SECRET "\n", strlen(SECRET) + 1, 0600), 0);
	CHECK_EQ(load_logged(path, &a, log, sizeof(log)), 0);
	CHECK(a && same_secret(a, ref));
	CHECKF(log[0] == '\0', "%s", log);
	tfs_auth_free(a);
	a = NULL;

	TEST("load: without a newline, the same secret");
	CHECK_EQ(write_file(path, SECRET, strlen(SECRET), 0600), 0);
	CHECK_EQ(load_logged(path, &a, log, sizeof(log)), 0);
	CHECK(a && same_secret(a, ref));
	tfs_auth_free(a);
	a = NULL;

	TEST("load: only one newline is stripped");
	CHECK_EQ(write_file(path, SECRET "\n\n", strlen(SECRET) + 2, 0600), 0);
	CHECK_EQ(load_logged(path, &a, log, sizeof(log)), 0);
	CHECK(a && !same_secret(a, ref));
	tfs_auth_free(a);
	a = NULL;

	TEST("load: readable by others is accepted with a warning");
	CHECK_EQ(write_file(path, SECRET "\n", strlen(SECRET) + 1, 0644), 0);
	CHECK_EQ(load_logged(path, &a, log, sizeof(log)), 0);
	CHECKF(strstr(log, "readable by group or others"), "%s", log);
	tfs_auth_free(a);
	a = NULL;

	TEST("load: 15 bytes (and a newline) are refused");
	CHECK_EQ(write_file(path, "0123456789abcde\n", 16, 0600), 0);
	CHECK_EQ(load_logged(path, &a, log, sizeof(log)), -EINVAL);
	CHECKF(strstr(log, "at least 16"), "%s", log);
	CHECK(a == NULL);
	CHECK_EQ(write_file(path, "0123456789abcdef", 16, 0600), 0);
	CHECK_EQ(load_logged(path, &a, log, sizeof(log)), 0);
	tfs_auth_free(a);
	a = NULL;
	CHECK_EQ(write_file(path, "", 0, 0600), 0);
	CHECK_EQ(load_logged(path, &a, log, sizeof(log)), -EINVAL);

	TEST("load: missing file, a directory, a huge file");
	unlink(path);
	CHECK_EQ(load_logged(path, &a, log, sizeof(log)), -ENOENT);
	CHECKF(strstr(log, path), "%s", log);
	CHECK_EQ(load_logged(dir, &a, log, sizeof(log)), -EINVAL);
	char *big = tfs_calloc(1, 70000);
	memset(big, 'k', 70000);
	CHECK_EQ(write_file(path, big, 70000, 0600), 0);
	CHECK_EQ(load_logged(path, &a, log, sizeof(log)), -EFBIG);
	free(big);
	unlink(path);
	rmdir(dir);

	TEST("new: shorter than 16 bytes is -EINVAL");
	CHECK_EQ(tfs_auth_new("0123456789abcde", 15, 1, &a), -EINVAL);
	CHECK_EQ(tfs_auth_new("0123456789abcdef", 16, 1, &a), 0);
	tfs_auth_free(a);
	tfs_auth_free(NULL);
	tfs_auth_free(ref);
	tfs_log_set_level(level);
}

int main(void)
{
	tfs_log_set_level(getenv("TFS_TEST_VERBOSE") ? TFS_LOG_DEBUG
						     : TFS_LOG_ERROR);
	test_kat();
	test_roundtrip();
	test_tampering();
	test_skew();
	test_replay();
	test_replay_limit();
	test_malformed();
	test_threads();
	test_load();
	return check_done();
}
