/*
 * auth.h - authentication of peer requests with the cluster secret.
 *
 * Every request between nodes carries four headers:
 *
 *   X-Topicfs-Node:  the sender's node id (decimal)
 *   X-Topicfs-Time:  the sender's clock, ms since the Unix epoch
 *   X-Topicfs-Nonce: 16 random hex digits
 *   X-Topicfs-Mac:   64 hex digits, HMAC-SHA256 keyed by the secret over
 *                    "topicfs-v1\n" METHOD "\n" TARGET "\n" NODE "\n"
 *                    TIME "\n" NONCE "\n" hex(SHA-256(body))
 *
 * TARGET is the path with its query string, as sent.  Decimals are
 * canonical (no sign, no leading zero), hex digits lowercase; NODE, TIME
 * and NONCE enter the MAC as the header values.  A receiver refuses
 * (TFS_EAUTH, HTTP 401) a request with a missing or malformed header, a
 * wrong MAC, a time more than TFS_AUTH_SKEW_MS from its own clock, or a
 * MAC it already accepted within that window (a replay).  The MAC and the
 * digest are computed with OpenSSL's libcrypto, never by hand.
 *
 * Thread-safety: sign and verify may be called from any thread at once
 * (the replay cache has its own lock).
 */
#ifndef TFS_AUTH_H
#define TFS_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define TFS_AUTH_SKEW_MS 30000
#define TFS_AUTH_SECRET_MIN 16		/* bytes */
/* Accepted MACs remembered at most (a table of 48 MB at worst); when that
 * many are still inside the window, new requests are refused. */
#define TFS_AUTH_REPLAY_MAX (1u << 20)

struct tfs_auth;

/*
 * Reads the secret from path: its bytes, a trailing newline stripped.
 * Refuses (-EINVAL, logged) a secret shorter than TFS_AUTH_SECRET_MIN
 * bytes or a path that is not a regular file, and (-EFBIG) a file over
 * 64 KiB; warns when the file is readable by group or others.  Returns 0
 * or -errno, logged.
 */
int tfs_auth_load(const char *path, uint32_t node_id, struct tfs_auth **out);

/* The same from memory (tests).  Returns 0, -EINVAL (secret too short)
 * or -EIO (libcrypto has no HMAC or SHA-256), logged. */
int tfs_auth_new(const void *secret, size_t len, uint32_t node_id,
		 struct tfs_auth **out);

/* Wipes the secret and frees a.  NULL is fine. */
void tfs_auth_free(struct tfs_auth *a);

/* Sets the replay cache's bound (default TFS_AUTH_REPLAY_MAX; tests). */
void tfs_auth_set_replay_limit(struct tfs_auth *a, size_t entries);

/* The headers of one signed request, ready for tfs_http_req.headers. */
struct tfs_auth_headers {
	char node[48];
	char time[48];
	char nonce[48];
	char mac[96];
	const char *lines[5];		/* the four above, then NULL */
};

/*
 * Signs a request of this node at now_ms (tfs_now_ms()): each of node,
 * time, nonce and mac holds one whole "Name: value" line.  Should
 * libcrypto fail (logged), the Mac line says "unavailable" and the peer
 * refuses the request.
 */
void tfs_auth_sign(struct tfs_auth *a, const char *method,
		   const char *target, const void *body, size_t len,
		   int64_t now_ms, struct tfs_auth_headers *h);

/*
 * Checks a received request.  node, time, nonce and mac are the header
 * values (NULL when absent).  Returns 0 with the sender in *from, or
 * TFS_EAUTH with a short reason in *why (static text, for the log): a
 * missing or malformed header, the time, a wrong MAC, a replay, or a
 * full replay cache.  Only a request that passes every check is
 * remembered as seen.
 */
int tfs_auth_verify(struct tfs_auth *a, const char *method,
		    const char *target, const char *node, const char *time,
		    const char *nonce, const char *mac, const void *body,
		    size_t len, int64_t now_ms, uint32_t *from,
		    const char **why);

#endif
