/*
 * fuzz_auth.c - libFuzzer target for the checks of peer request headers.
 *
 * Each input is split at '\n' into method, target, node, time, nonce,
 * mac and body (missing fields are absent headers, NULL), and given to
 * tfs_auth_verify at a fixed clock.  Whatever the input, it must return 0
 * or TFS_EAUTH with a reason, and 0 only for a request whose MAC is right:
 * then the same request must be refused as a replay.  A second pass signs
 * the input's method and target and checks that the signature verifies
 * (with a verifier of the default cache size, until that fills).
 *
 *   make fuzz   (builds build-fuzz/fuzz_auth and runs it on
 *               tests/fuzz/corpus/fuzz_auth)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "err.h"
#include "log.h"

#define NOW 1700000000000LL
#define SECRET "fuzzing secret, sixteen+ bytes"

static struct tfs_auth *verifier, *verifier2, *signer;

static void setup(void)
{
	tfs_log_set_level(TFS_LOG_ERROR);
	if (tfs_auth_new(SECRET, strlen(SECRET), 1, &verifier) ||
	    tfs_auth_new(SECRET, strlen(SECRET), 1, &verifier2) ||
	    tfs_auth_new(SECRET, strlen(SECRET), 2, &signer))
		abort();
	/* Small, so the full-cache path is reached too. */
	tfs_auth_set_replay_limit(verifier, 64);
}

static void check_result(int rc, const char *why)
{
	if (rc == 0 ? why != NULL : rc != TFS_EAUTH || !why || !*why)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *f[7] = { NULL };
	const char *why;
	uint32_t from;
	size_t n = 0;
	int rc;

	if (!verifier)
		setup();
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (char *p = buf; n < 7 && p; n++) {
		f[n] = p;
		p = n < 6 ? strchr(p, '\n') : NULL;
		if (p)
			*p++ = '\0';
	}
	const char *body = f[6] ? f[6] : "";
	size_t blen = f[6] ? size - (size_t)(f[6] - buf) : 0;

	rc = tfs_auth_verify(verifier, f[0], f[1], f[2], f[3], f[4], f[5],
			     body, blen, NOW, &from, &why);
	check_result(rc, why);
	if (rc == 0) {
		rc = tfs_auth_verify(verifier, f[0], f[1], f[2], f[3], f[4],
				     f[5], body, blen, NOW, &from, &why);
		if (rc != TFS_EAUTH || !strstr(why, "replayed"))
			abort();
	}
	if (f[0] && *f[0] && f[1] && *f[1]) {
		struct tfs_auth_headers h;

		tfs_auth_sign(signer, f[0], f[1], body, blen, NOW, &h);
		rc = tfs_auth_verify(verifier2, f[0], f[1], h.node + 16,
				     h.time + 16, h.nonce + 17, h.mac + 15,
				     body, blen, NOW, &from, &why);
		check_result(rc, why);
		if (rc != 0 && !strstr(why, "full"))
			abort();
		if (rc == 0 && from != 2)
			abort();
	}
	free(buf);
	return 0;
}
