/*
 * The end-to-end harness's signed peer requests against the real peer
 * authentication: tests/e2e/cluster.bash makes the secret file
 * (secret_make) and sends requests signed with the openssl command line
 * (peer_request); here the server is this project's HTTP server with a
 * check hook that loads that file with tfs_auth_load and verifies each
 * request with tfs_auth_verify, as a node does.  So when the cluster
 * test of bad MACs and replays fails, the harness is not the cause.
 *
 * Needs bash, curl, openssl and od (contrib/install-deps.sh test); run
 * from the repository root (make unit does), or with TFS_E2E_DIR naming
 * tests/e2e.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "check.h"
#include "httpd.h"
#include "log.h"
#include "util.h"

#define TARGET "/v1/append?topic=7&partition=0&epoch=3&producer=0123456789abcdef&seq=0"

static struct tfs_auth *auth;
static atomic_uint last_from;
static atomic_int appended;

static int check(struct tfs_httpd_req *r, void *arg)
{
	const char *why = NULL;
	uint32_t from = 0;
	size_t len;
	const void *body = tfs_httpd_body(r, &len);

	if (tfs_auth_verify(auth, tfs_httpd_method(r), tfs_httpd_target(r),
			    tfs_httpd_header(r, "X-Topicfs-Node"),
			    tfs_httpd_header(r, "X-Topicfs-Time"),
			    tfs_httpd_header(r, "X-Topicfs-Nonce"),
			    tfs_httpd_header(r, "X-Topicfs-Mac"), body, len,
			    tfs_now_ms(), &from, &why) != 0) {
		fprintf(stderr, "# refused: %s\n", why ? why : "?");
		return 401;
	}
	atomic_store(&last_from, from);
	return 0;
}

static void h_append(struct tfs_httpd_req *r, void *arg)
{
	size_t len;
	const char *body = tfs_httpd_body(r, &len);

	if (len == 12 && memcmp(body, "signed line\n", 12) == 0 &&
	    tfs_httpd_query(r, "producer") &&
	    strcmp(tfs_httpd_query(r, "producer"), "0123456789abcdef") == 0)
		atomic_fetch_add(&appended, 1);
	tfs_httpd_reply_text(r, 200, "ok");
}

static char e2e[512], dir[64];

/* Runs a bash snippet with cluster.bash loaded and T=dir; returns its
 * first line of output in out (empty on failure). */
static void harness(const char *snippet, char *out, size_t n)
{
	char cmd[4096];
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "bash -c 'set -e; . \"$0\"; T=\"$1\"; URL=\"$2\"; %s' "
		 "'%s/cluster.bash' '%s' 'http://127.0.0.1:%s'",
		 snippet, e2e, dir, getenv("PEERREQ_PORT"));
	out[0] = '\0';
	p = popen(cmd, "r");
	if (!p)
		return;
	if (!fgets(out, (int)n, p))
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	pclose(p);
}

static bool have(const char *tool)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

int main(void)
{
	struct tfs_httpd_config cfg = {
		.listen = "127.0.0.1:0", .threads = 2, .max_body = 1 << 20,
		.check = check,
	};
	struct tfs_httpd *d = NULL;
	char path[600], out[256], port[16];
	const char *env = getenv("TFS_E2E_DIR");

	tfs_log_set_level(TFS_LOG_WARN);
	TEST("the tools are there");
	CHECKF(have("bash") && have("curl") && have("openssl") && have("od"),
	       "bash, curl, openssl and od are needed: run "
	       "contrib/install-deps.sh test");
	snprintf(e2e, sizeof(e2e), "%s", env ? env : "tests/e2e");
	snprintf(path, sizeof(path), "%s/cluster.bash", e2e);
	CHECKF(access(path, R_OK) == 0, "no %s: run from the repository "
	       "root or set TFS_E2E_DIR", path);
	snprintf(dir, sizeof(dir), "/tmp/tfs-peerreq-XXXXXX");
	if (check_failed || !mkdtemp(dir))
		return check_done();

	TEST("secret_make writes a file tfs_auth_load takes");
	harness("secret_make \"$T/secret\"; echo made", out, sizeof(out));
	CHECK(strcmp(out, "made") == 0);
	snprintf(path, sizeof(path), "%s/secret", dir);
	CHECK_EQ(tfs_auth_load(path, 1, &auth), 0);
	if (!auth)
		goto out;

	CHECK_EQ(tfs_httpd_new(&cfg, &d), 0);
	if (!d)
		goto out;
	tfs_httpd_route(d, "POST", "/v1/append", h_append, NULL);
	CHECK_EQ(tfs_httpd_listen(d), 0);
	snprintf(port, sizeof(port), "%u", tfs_httpd_port(d));
	setenv("PEERREQ_PORT", port, 1);

	TEST("peer_request: signed by the openssl command line, accepted");
	harness("printf \"signed line\\n\" >\"$T/body\"; "
		"now=$(now_ms); nonce=$(rand_hex 8); "
		"echo \"$now $nonce\" >\"$T/sent\"; "
		"peer_request \"$T/out\" \"$URL\" POST \"" TARGET "\" 2 "
		"\"$now\" \"$nonce\" \"$T/body\"",
		out, sizeof(out));
	CHECKF(strcmp(out, "200") == 0, "status %s", out);
	CHECK_EQ(atomic_load(&appended), 1);
	CHECK_EQ(atomic_load(&last_from), 2);

	TEST("peer_request: the same request again is a replay, 401");
	harness("read now nonce <\"$T/sent\"; "
		"peer_request \"$T/out\" \"$URL\" POST \"" TARGET "\" 2 "
		"\"$now\" \"$nonce\" \"$T/body\"",
		out, sizeof(out));
	CHECKF(strcmp(out, "401") == 0, "status %s", out);

	TEST("peer_request: one MAC digit changed, 401");
	harness("now=$(now_ms); nonce=$(rand_hex 8); "
		"mac=$(peer_mac \"$T/secret\" POST \"" TARGET "\" 2 \"$now\" "
		"\"$nonce\" \"$T/body\"); "
		"bad=${mac:0:63}$(tr 0-9a-f 1-9a-f0 <<<\"${mac:63}\"); "
		"peer_request \"$T/out\" \"$URL\" POST \"" TARGET "\" 2 "
		"\"$now\" \"$nonce\" \"$T/body\" \"$bad\"",
		out, sizeof(out));
	CHECKF(strcmp(out, "401") == 0, "status %s", out);

	TEST("peer_request: another secret, 401");
	harness("secret_make \"$T/other\"; now=$(now_ms); nonce=$(rand_hex 8); "
		"mac=$(peer_mac \"$T/other\" POST \"" TARGET "\" 2 \"$now\" "
		"\"$nonce\" \"$T/body\"); "
		"peer_request \"$T/out\" \"$URL\" POST \"" TARGET "\" 2 "
		"\"$now\" \"$nonce\" \"$T/body\" \"$mac\"",
		out, sizeof(out));
	CHECKF(strcmp(out, "401") == 0, "status %s", out);

	TEST("peer_request: ten minutes old, 401");
	harness("peer_request \"$T/out\" \"$URL\" POST \"" TARGET "\" 2 "
		"$(($(now_ms) - 600000)) $(rand_hex 8) \"$T/body\"",
		out, sizeof(out));
	CHECKF(strcmp(out, "401") == 0, "status %s", out);

	TEST("peer_request: a fresh nonce is a new request, accepted");
	harness("peer_request \"$T/out\" \"$URL\" POST \"" TARGET "\" 2 "
		"$(now_ms) $(rand_hex 8) \"$T/body\"",
		out, sizeof(out));
	CHECKF(strcmp(out, "200") == 0, "status %s", out);
	CHECK_EQ(atomic_load(&appended), 2);

out:
	tfs_httpd_stop(d, 1000);
	tfs_auth_free(auth);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	if (system(path) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return check_done();
}
