/*
 * auth.c - peer request authentication: HMAC-SHA256 with the cluster
 * secret, through OpenSSL's libcrypto (the only file that includes it).
 *
 * WIRE FORMAT (the four headers of include/auth.h)
 *
 *   X-Topicfs-Node   decimal node id, 0..4294967295, no sign, no leading
 *                    zero (except "0")
 *   X-Topicfs-Time   decimal ms since the Unix epoch, 0..INT64_MAX, same
 *                    rules
 *   X-Topicfs-Nonce  exactly 16 lowercase hex digits (8 random bytes)
 *   X-Topicfs-Mac    exactly 64 lowercase hex digits: HMAC-SHA256 keyed by
 *                    the secret over
 *
 *     "topicfs-v1\n" METHOD "\n" TARGET "\n" NODE "\n" TIME "\n" NONCE "\n"
 *     hex(SHA-256(body))
 *
 *                    where NODE, TIME and NONCE are the header values as
 *                    sent and the body digest is 64 lowercase hex digits.
 *
 * Values are parsed strictly (one canonical spelling each), so a value
 * means one thing to both ends.  The request time must be within
 * TFS_AUTH_SKEW_MS of the receiver's clock, both ways, inclusive.
 *
 * REPLAY CACHE
 *
 * An accepted request is remembered by (the first 16 bytes of) its MAC
 * until its time leaves the skew window (time + TFS_AUTH_SKEW_MS); the
 * same MAC seen again before that is a replay.  A request outside the
 * window is refused by the clock check, so forgetting it then is safe.
 * The cache is an open-addressing hash set (MACs are uniformly random, so
 * their first bytes are the hash) of 24-byte slots, rebuilt without the
 * expired entries when it fills to 3/4, at a size of 1.5 to 3 times the
 * live entries.  It holds at most `limit` entries (the default's table is
 * 48 MB at most): when full of unexpired ones, new requests are
 * refused ("replay cache full") rather than old ones forgotten, which
 * would reopen a replay window.  Only requests with a valid MAC reach it,
 * so an outsider cannot fill it.  One mutex protects it; the MAC is
 * computed outside it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "auth.h"
#include "err.h"
#include "log.h"
#include "util.h"
#include "banned.h"

#define MAC_LEN 32
#define NONCE_LEN 8
#define SECRET_FILE_MAX 65536
#define CACHE_MIN 1024			/* slots */

#define H_NODE "X-Topicfs-Node"
#define H_TIME "X-Topicfs-Time"
#define H_NONCE "X-Topicfs-Nonce"
#define H_MAC "X-Topicfs-Mac"

/* expiry 0: empty (a real one is time + skew >= skew > 0). */
struct slot {
	uint64_t key[2];
	int64_t expiry;
};

struct replay {
	pthread_mutex_t lock;
	struct slot *slots;		/* (lock) */
	size_t cap;			/* (lock) a power of two */
	size_t used;			/* (lock) occupied, expired or not */
	size_t limit;			/* (lock) */
	int64_t min_expiry;		/* (lock) over occupied slots */
};

struct tfs_auth {
	unsigned char *secret;
	size_t len;
	uint32_t node_id;
	char node_str[16];
	EVP_MAC *hmac;
	EVP_MD *sha256;
	struct replay cache;
	atomic_uint_fast64_t fallback;	/* nonce counter if no randomness */
};

/* --- hex and decimal ----------------------------------------------------- */

static void to_hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Exactly 2n lowercase hex digits into out[n] (out may be NULL). */
static bool parse_hex(const char *s, unsigned char *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		if (out)
			out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

/* A canonical non-negative decimal no larger than max. */
static bool parse_dec(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 20 || (s[0] == '0' && n > 1))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (s[i] < '0' || s[i] > '9' || v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* --- the MAC ------------------------------------------------------------- */

static void log_crypto_error(const char *what)
{
	char buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	tfs_err("auth: %s failed: %s", what, buf);
	ERR_clear_error();
}

/* Returns 0 or -EIO (logged). */
static int compute_mac(struct tfs_auth *a, const char *method,
		       const char *target, const char *node, const char *time,
		       const char *nonce, const void *body, size_t len,
		       unsigned char mac[MAC_LEN])
{
	const char *parts[] = { "topicfs-v1\n", method, "\n", target, "\n",
				node, "\n", time, "\n", nonce, "\n" };
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						 "SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	unsigned char digest[EVP_MAX_MD_SIZE];
	char digest_hex[2 * 32 + 1];
	unsigned int dlen = 0;
	size_t mlen = 0;
	EVP_MAC_CTX *ctx;
	int ok;

	if (!EVP_Digest(len ? body : "", len, digest, &dlen, a->sha256, NULL) ||
	    dlen != 32) {
		log_crypto_error("SHA-256");
		return -EIO;
	}
	to_hex(digest, 32, digest_hex);
	ctx = EVP_MAC_CTX_new(a->hmac);
	ok = ctx && EVP_MAC_init(ctx, a->secret, a->len, params);
	for (size_t i = 0; ok && i < TFS_ARRAY_SIZE(parts); i++)
		ok = EVP_MAC_update(ctx, (const unsigned char *)parts[i],
				    strlen(parts[i]));
	ok = ok && EVP_MAC_update(ctx, (const unsigned char *)digest_hex, 64);
	ok = ok && EVP_MAC_final(ctx, mac, &mlen, MAC_LEN) && mlen == MAC_LEN;
	EVP_MAC_CTX_free(ctx);
	if (!ok) {
		log_crypto_error("HMAC-SHA256");
		return -EIO;
	}
	return 0;
}

/* --- the replay cache ---------------------------------------------------- */

static void cache_place(struct slot *slots, size_t cap, const uint64_t key[2],
			int64_t expiry)
{
	size_t i = key[0] & (cap - 1);

	while (slots[i].expiry)
		i = (i + 1) & (cap - 1);
	slots[i].key[0] = key[0];
	slots[i].key[1] = key[1];
	slots[i].expiry = expiry;
}

/* Drops expired entries; resizes to twice the live ones (lock). */
static void cache_rebuild(struct replay *c, int64_t now)
{
	size_t live = 0, cap = CACHE_MIN;
	int64_t min = INT64_MAX;
	struct slot *slots;

	for (size_t i = 0; i < c->cap; i++)
		live += c->slots[i].expiry >= now;
	while (2 * cap < 3 * (live + 1))
		cap *= 2;
	slots = tfs_calloc(cap, sizeof(*slots));
	for (size_t i = 0; i < c->cap; i++) {
		struct slot *s = &c->slots[i];

		if (s->expiry < now)
			continue;
		cache_place(slots, cap, s->key, s->expiry);
		min = TFS_MIN(min, s->expiry);
	}
	free(c->slots);
	c->slots = slots;
	c->cap = cap;
	c->used = live;
	c->min_expiry = min;
}

/*
 * Remembers mac until expiry.  Returns 0, -EEXIST (seen: a replay) or
 * -ENOSPC (full of unexpired entries).
 */
static int cache_insert(struct replay *c, const unsigned char mac[MAC_LEN],
			int64_t expiry, int64_t now)
{
	uint64_t key[2];
	int rc = 0;

	memcpy(key, mac, sizeof(key));
	pthread_mutex_lock(&c->lock);
	if (c->used >= c->limit && now > c->min_expiry)
		cache_rebuild(c, now);
	for (size_t i = key[0] & (c->cap - 1); c->slots[i].expiry;
	     i = (i + 1) & (c->cap - 1)) {
		if (c->slots[i].key[0] == key[0] &&
		    c->slots[i].key[1] == key[1]) {
			rc = -EEXIST;
			goto out;
		}
	}
	if (c->used >= c->limit) {
		rc = -ENOSPC;
		goto out;
	}
	if (4 * (c->used + 1) > 3 * c->cap)
		cache_rebuild(c, now);
	cache_place(c->slots, c->cap, key, expiry);
	c->used++;
	c->min_expiry = TFS_MIN(c->min_expiry, expiry);
out:
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* --- the object ---------------------------------------------------------- */

int tfs_auth_new(const void *secret, size_t len, uint32_t node_id,
		 struct tfs_auth **out)
{
	struct tfs_auth *a;

	if (len < TFS_AUTH_SECRET_MIN) {
		tfs_err("auth: the cluster secret is %zu bytes; at least %d "
			"are needed", len, TFS_AUTH_SECRET_MIN);
		return -EINVAL;
	}
	a = tfs_calloc(1, sizeof(*a));
	a->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!a->hmac || !a->sha256) {
		log_crypto_error("loading HMAC and SHA-256 from libcrypto");
		tfs_auth_free(a);
		return -EIO;
	}
	a->secret = tfs_malloc(len);
	memcpy(a->secret, secret, len);
	a->len = len;
	a->node_id = node_id;
	snprintf(a->node_str, sizeof(a->node_str), "%" PRIu32, node_id);
	pthread_mutex_init(&a->cache.lock, NULL);
	a->cache.cap = CACHE_MIN;
	a->cache.slots = tfs_calloc(CACHE_MIN, sizeof(struct slot));
	a->cache.limit = TFS_AUTH_REPLAY_MAX;
	a->cache.min_expiry = INT64_MAX;
	*out = a;
	return 0;
}

void tfs_auth_free(struct tfs_auth *a)
{
	if (!a)
		return;
	if (a->secret) {
		OPENSSL_cleanse(a->secret, a->len);
		free(a->secret);
		pthread_mutex_destroy(&a->cache.lock);
	}
	free(a->cache.slots);
	EVP_MAC_free(a->hmac);
	EVP_MD_free(a->sha256);
	free(a);
}

void tfs_auth_set_replay_limit(struct tfs_auth *a, size_t entries)
{
	pthread_mutex_lock(&a->cache.lock);
	a->cache.limit = entries;
	pthread_mutex_unlock(&a->cache.lock);
}

/* Reads at most SECRET_FILE_MAX bytes of fd into buf; returns the length
 * or -errno. */
static ssize_t read_secret(int fd, unsigned char *buf)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, buf + got, SECRET_FILE_MAX + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return (ssize_t)got;
		got += (size_t)n;
		if (got > SECRET_FILE_MAX)
			return -EFBIG;
	}
}

int tfs_auth_load(const char *path, uint32_t node_id, struct tfs_auth **out)
{
	unsigned char *buf = tfs_malloc(SECRET_FILE_MAX + 1);
	struct stat st;
	ssize_t n;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		tfs_err("auth: cannot open the secret file %s: %s", path,
			strerror(-rc));
		goto out_free;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		tfs_err("auth: the secret file %s is not a regular file", path);
		goto out_close;
	}
	if (st.st_mode & (S_IRGRP | S_IROTH))
		tfs_warn("auth: the secret file %s is readable by group or "
			 "others (mode %03o); chmod 600 it", path,
			 (unsigned)(st.st_mode & 0777));
	n = read_secret(fd, buf);
	if (n < 0) {
		rc = (int)n;
		tfs_err("auth: cannot read the secret file %s: %s", path,
			n == -EFBIG ? "over 64 KiB" : strerror(-rc));
		goto out_close;
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if ((size_t)n < TFS_AUTH_SECRET_MIN) {
		rc = -EINVAL;
		tfs_err("auth: the secret in %s is %zd bytes; at least %d are "
			"needed", path, n, TFS_AUTH_SECRET_MIN);
		goto out_close;
	}
	rc = tfs_auth_new(buf, (size_t)n, node_id, out);
out_close:
	close(fd);
out_free:
	OPENSSL_cleanse(buf, SECRET_FILE_MAX + 1);
	free(buf);
	return rc;
}

/* --- signing and checking ------------------------------------------------ */

static void make_nonce(struct tfs_auth *a, unsigned char nonce[NONCE_LEN])
{
	uint64_t v;

	if (RAND_bytes(nonce, NONCE_LEN) == 1)
		return;
	ERR_clear_error();
	if (getrandom(nonce, NONCE_LEN, 0) == NONCE_LEN)
		return;
	/* The nonce must only be unique: the MAC carries the trust. */
	tfs_warn("auth: no random bytes; using a counter for the nonce");
	v = (uint64_t)tfs_mono_ns() ^ atomic_fetch_add(&a->fallback, 1) << 40;
	memcpy(nonce, &v, NONCE_LEN);
}

void tfs_auth_sign(struct tfs_auth *a, const char *method,
		   const char *target, const void *body, size_t len,
		   int64_t now_ms, struct tfs_auth_headers *h)
{
	unsigned char nonce[NONCE_LEN], mac[MAC_LEN];
	char time[24], nonce_hex[2 * NONCE_LEN + 1], mac_hex[2 * MAC_LEN + 1];

	snprintf(time, sizeof(time), "%" PRId64, now_ms > 0 ? now_ms : 0);
	make_nonce(a, nonce);
	to_hex(nonce, NONCE_LEN, nonce_hex);
	if (compute_mac(a, method, target, a->node_str, time, nonce_hex, body,
			len, mac) == 0)
		to_hex(mac, MAC_LEN, mac_hex);
	else
		snprintf(mac_hex, sizeof(mac_hex), "unavailable");
	snprintf(h->node, sizeof(h->node), H_NODE ": %s", a->node_str);
	snprintf(h->time, sizeof(h->time), H_TIME ": %s", time);
	snprintf(h->nonce, sizeof(h->nonce), H_NONCE ": %s", nonce_hex);
	snprintf(h->mac, sizeof(h->mac), H_MAC ": %s", mac_hex);
	h->lines[0] = h->node;
	h->lines[1] = h->time;
	h->lines[2] = h->nonce;
	h->lines[3] = h->mac;
	h->lines[4] = NULL;
}

/* Checks the four headers' syntax; returns the reason or NULL. */
static const char *check_syntax(const char *node, const char *time,
				const char *nonce, const char *mac,
				uint64_t *node_id, uint64_t *t,
				unsigned char want[MAC_LEN])
{
	if (!node)
		return "missing " H_NODE " header";
	if (!time)
		return "missing " H_TIME " header";
	if (!nonce)
		return "missing " H_NONCE " header";
	if (!mac)
		return "missing " H_MAC " header";
	if (!parse_dec(node, UINT32_MAX, node_id))
		return "malformed " H_NODE " header";
	if (!parse_dec(time, INT64_MAX, t))
		return "malformed " H_TIME " header";
	if (!parse_hex(nonce, NULL, NONCE_LEN))
		return "malformed " H_NONCE " header";
	if (!parse_hex(mac, want, MAC_LEN))
		return "malformed " H_MAC " header";
	return NULL;
}

/* |t - now| <= TFS_AUTH_SKEW_MS, without overflow for any now. */
static bool within_skew(int64_t t, int64_t now)
{
	if (t >= now)
		return (uint64_t)t - (uint64_t)now <= TFS_AUTH_SKEW_MS;
	return (uint64_t)now - (uint64_t)t <= TFS_AUTH_SKEW_MS;
}

int tfs_auth_verify(struct tfs_auth *a, const char *method,
		    const char *target, const char *node, const char *time,
		    const char *nonce, const char *mac, const void *body,
		    size_t len, int64_t now_ms, uint32_t *from,
		    const char **why)
{
	unsigned char want[MAC_LEN], got[MAC_LEN];
	uint64_t node_id, t;
	int rc;

	if (!method || !*method || !target || !*target) {
		*why = "no method or target";
		return TFS_EAUTH;
	}
	*why = check_syntax(node, time, nonce, mac, &node_id, &t, want);
	if (*why)
		return TFS_EAUTH;
	if (!within_skew((int64_t)t, now_ms)) {
		*why = "request time more than 30 s from our clock";
		return TFS_EAUTH;
	}
	if (compute_mac(a, method, target, node, time, nonce, body, len,
			got) != 0) {
		*why = "cannot compute the MAC";
		return TFS_EAUTH;
	}
	if (CRYPTO_memcmp(want, got, MAC_LEN) != 0) {
		*why = "wrong MAC";
		return TFS_EAUTH;
	}
	rc = cache_insert(&a->cache, got,
			  (int64_t)TFS_MIN(t, (uint64_t)INT64_MAX -
						      TFS_AUTH_SKEW_MS) +
				  TFS_AUTH_SKEW_MS,
			  now_ms);
	if (rc) {
		*why = rc == -EEXIST ? "replayed request"
				     : "replay cache full";
		return TFS_EAUTH;
	}
	*from = (uint32_t)node_id;
	*why = NULL;
	return 0;
}
