/*
 * main.c - the topicfs daemon: arguments, configuration, daemonisation.
 *
 *   topicfs [-f] [-d] [-c FILE] [-o key=value,...] DATA_DIR MOUNTPOINT
 *
 * Options may come before or after the two paths, as mount.fuse3 passes
 * them.  `mount -t fuse.topicfs DATA MNT -o OPTS` (or an fstab line) runs
 * /sbin/mount.fuse3, which runs, through /bin/sh with mount(8)'s cleared
 * PATH, so from /usr/local/sbin, /usr/sbin, ... only:
 *
 *   topicfs DATA MNT -o rw,noatime,config=FILE,allow_other,dev,suid
 *
 * mount(8) has already dropped x-* and comment= options; mount.fuse3 drops
 * _netdev, nofail, auto, noauto, user, nouser, users, setuid= and
 * drop_privileges, and adds dev,suid unless nodev/nosuid were given.  With
 * drop_privileges, mount.fuse3 mounts by itself and MNT is "/dev/fd/N",
 * the open /dev/fuse descriptor (libfuse takes it as such).
 *
 * Each -o item is a configuration key (conf.h), `config=FILE`, `takeover`,
 * a FUSE mount option passed to libfuse, a mount flag libfuse 3.14 does
 * not know and topicfs has no use for (relatime, ...), or a mount(8)
 * option that only concerns mount itself; the last two are ignored.
 * Configuration precedence: defaults < file < -o, whatever the order on
 * the command line.
 *
 * Without -f the daemon forks; the parent waits on a pipe until the child
 * has opened the store and mounted, and exits 0 then, or 1 with the error
 * already printed, so mount(8), a script or systemd (Type=forking) sees
 * failures.  With -f under systemd (Type=notify) the daemon sends READY=1
 * once mounted and STOPPING=1 when the mount ends.  SIGTERM, SIGINT and
 * SIGHUP unmount (lazily if busy) and exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "cluster.h"
#include "compactor.h"
#include "conf.h"
#include "err.h"
#include "fsops.h"
#include "httpc.h"
#include "httpd.h"
#include "produce.h"
#include "remote.h"
#include "repair.h"
#include "repl.h"
#include "log.h"
#include "scrub.h"
#include "store.h"
#include "util.h"
#include "banned.h"

#define VERSION "0.1.0"
#define MAX_FUSE_OPTS 64

struct args {
	bool foreground;
	bool debug;
	bool takeover;
	const char *config;
	const char *data_dir;
	const char *mountpoint;
	struct tfs_buf overrides;	/* key=value\0key=value\0... */
	const char *fuse_opts[MAX_FUSE_OPTS + 1];
	int nfuse;
	char *opt_copies[MAX_FUSE_OPTS * 4];
	int ncopies;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: topicfs [options] DATA_DIR MOUNTPOINT\n"
		"\n"
		"Mounts the commit log stored in DATA_DIR at MOUNTPOINT: topics\n"
		"are directories (mkdir creates one), partitions are append-only\n"
		"files, MOUNTPOINT/<topic>/.follow/<p> blocks at the end.\n"
		"\n"
		"options:\n"
		"  -f               stay in the foreground, log to stderr\n"
		"  -d               foreground with debug logging\n"
		"  -c FILE          configuration file (/etc/topicfs/topicfs.conf)\n"
		"  -o OPT[,OPT...]  key=value configuration (as in the file),\n"
		"                   config=FILE, takeover (replace a stale\n"
		"                   mount left by a killed daemon), or FUSE\n"
		"                   mount options: allow_other, allow_root,\n"
		"                   default_permissions, ro, fsname=, ...\n"
		"  --config-doc     print the configuration reference (Markdown)\n"
		"  -V, --version    print the version\n"
		"  -h, --help       this help\n"
		"\n"
		"Also mounted by `mount -t fuse.topicfs DATA_DIR MOUNTPOINT -o ...`\n"
		"and /etc/fstab; see topicfs(8).  Stop with `umount MOUNTPOINT`,\n"
		"`fusermount3 -u MOUNTPOINT` or SIGTERM.\n");
}

/* mount(8) options that only concern mount itself. */
static bool is_mount_only(const char *o)
{
	static const char *const names[] = { "_netdev", "nofail", "noauto",
					     "auto", "user", "nouser", "users",
					     "owner", "group", "defaults",
					     NULL };

	if (!strncmp(o, "x-", 2) || !strncmp(o, "comment=", 8))
		return true;
	for (int i = 0; names[i]; i++)
		if (!strcmp(o, names[i]))
			return true;
	return false;
}

/*
 * Mount flags that fstab lines carry out of habit but libfuse 3.14 refuses
 * ("unknown option"); they mean nothing here: topicfs keeps no access
 * times, no inode versions and no symlinks.
 */
static bool is_ignored_flag(const char *o)
{
	static const char *const names[] = {
		"relatime", "norelatime", "strictatime", "nostrictatime",
		"diratime", "nodiratime", "lazytime", "nolazytime",
		"iversion", "noiversion", "symfollow", "nosymfollow",
		"silent", "loud", NULL
	};

	for (int i = 0; names[i]; i++)
		if (!strcmp(o, names[i]))
			return true;
	return false;
}

/* Options libfuse 3.14 understands (fuse_session_new or the mount). */
static bool is_fuse_opt(const char *o)
{
	static const char *const flags[] = {
		"allow_other", "allow_root", "default_permissions",
		"auto_unmount", "ro", "rw", "suid", "nosuid", "dev", "nodev",
		"exec", "noexec", "atime", "noatime", "sync", "async",
		"dirsync", "debug", NULL
	};
	static const char *const keyed[] = {
		"fsname=", "subtype=", "max_read=", "blksize=", "context=",
		"fscontext=", "defcontext=", "rootcontext=", NULL
	};

	for (int i = 0; flags[i]; i++)
		if (!strcmp(o, flags[i]))
			return true;
	for (int i = 0; keyed[i]; i++)
		if (!strncmp(o, keyed[i], strlen(keyed[i])))
			return true;
	return false;
}

static int add_fuse_opt(struct args *a, const char *o)
{
	if (a->nfuse >= MAX_FUSE_OPTS) {
		fprintf(stderr, "topicfs: too many mount options\n");
		return -1;
	}
	a->opt_copies[a->ncopies] = tfs_strdup(o);
	a->fuse_opts[a->nfuse++] = a->opt_copies[a->ncopies++];
	return 0;
}

/* Sorts one -o item into its place. */
static int take_option(struct args *a, char *o)
{
	char *eq = strchr(o, '=');

	if (!*o)
		return 0;
	if (!strncmp(o, "config=", 7)) {
		a->opt_copies[a->ncopies] = tfs_strdup(o + 7);
		a->config = a->opt_copies[a->ncopies++];
		return 0;
	}
	if (!strcmp(o, "takeover")) {
		a->takeover = true;
		return 0;
	}
	if (eq) {
		*eq = '\0';
		int k = tfs_conf_find(o);
		*eq = '=';
		if (k >= 0) {
			tfs_buf_add(&a->overrides, o, strlen(o) + 1);
			return 0;
		}
	}
	if (is_fuse_opt(o))
		return add_fuse_opt(a, o);
	if (is_mount_only(o) || is_ignored_flag(o))
		return 0;
	fprintf(stderr,
		"topicfs: unknown option '%s' (not a configuration key, see "
		"topicfs --config-doc, nor a mount option)\n",
		o);
	return -1;
}

static int take_options(struct args *a, const char *list)
{
	char *copy = tfs_strdup(list), *save = NULL;
	int rc = 0;

	for (char *o = strtok_r(copy, ",", &save); o && !rc;
	     o = strtok_r(NULL, ",", &save))
		rc = take_option(a, o);
	free(copy);
	return rc;
}

/* Returns 0 to go on, 1 to exit 0 (help), -1 to exit 1. */
static int parse_args(int argc, char **argv, struct args *a)
{
	int npos = 0;

	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];

		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			usage(stdout);
			return 1;
		} else if (!strcmp(s, "-V") || !strcmp(s, "--version")) {
			printf("topicfs %s\n", VERSION);
			return 1;
		} else if (!strcmp(s, "--config-doc")) {
			tfs_conf_write_doc(stdout);
			return 1;
		} else if (!strcmp(s, "-f")) {
			a->foreground = true;
		} else if (!strcmp(s, "-d")) {
			a->foreground = a->debug = true;
		} else if (!strcmp(s, "-c") || !strcmp(s, "-o")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "topicfs: %s needs a value\n", s);
				return -1;
			}
			if (s[1] == 'c')
				a->config = argv[++i];
			else if (take_options(a, argv[++i]))
				return -1;
		} else if (!strncmp(s, "-o", 2)) {
			if (take_options(a, s + 2))
				return -1;
		} else if (s[0] == '-' && s[1]) {
			fprintf(stderr, "topicfs: unknown option %s\n", s);
			usage(stderr);
			return -1;
		} else if (npos == 0) {
			a->data_dir = s;
			npos++;
		} else if (npos == 1) {
			a->mountpoint = s;
			npos++;
		} else {
			fprintf(stderr, "topicfs: unexpected argument %s\n", s);
			return -1;
		}
	}
	if (npos != 2) {
		usage(stderr);
		return -1;
	}
	return 0;
}

static int load_config(struct args *a, struct tfs_conf *c)
{
	char err[512];

	tfs_conf_init(c);
	if (a->config && tfs_conf_load_file(c, a->config, err, sizeof(err))) {
		fprintf(stderr, "topicfs: %s\n", err);
		return -1;
	}
	for (size_t i = 0; i < a->overrides.len;) {
		char *kv = a->overrides.data + i;
		char *eq = strchr(kv, '=');

		i += strlen(kv) + 1;
		*eq = '\0';
		int rc = tfs_conf_set(c, kv, eq + 1, err, sizeof(err));
		*eq = '=';
		if (rc) {
			fprintf(stderr, "topicfs: -o %s: %s\n", kv, err);
			return -1;
		}
	}
	if (a->debug)
		c->v[TFS_CONF_LOG_LEVEL] = TFS_LOG_DEBUG;
	tfs_log_set_level((enum tfs_log_level)c->v[TFS_CONF_LOG_LEVEL]);
	return 0;
}

/* "/dev/fd/N": the /dev/fuse descriptor mount.fuse3 -o drop_privileges
 * opened and mounted for us. */
static bool is_fd_mountpoint(const char *mnt)
{
	char rest;
	int n;

	return sscanf(mnt, "/dev/fd/%d%c", &n, &rest) == 1 && n >= 0;
}

/* Undoes the octal escapes of /proc/self/mountinfo ("\040" is a blank). */
static void unescape_mountinfo(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
		    r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 +
				      (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/* Whether a topicfs is mounted right at mnt (an absolute, resolved path). */
static bool is_topicfs_mount(const char *mnt)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		/* id parent maj:min root MOUNTPOINT opts [tags] - TYPE ... */
		char *save = NULL, *point = NULL, *dash, *type;
		int field = 0;

		dash = strstr(line, " - ");
		if (!dash)
			continue;
		*dash = '\0';
		type = strtok_r(dash + 3, " ", &save);
		save = NULL;
		for (char *t = strtok_r(line, " ", &save); t && field < 5;
		     t = strtok_r(NULL, " ", &save))
			if (++field == 5)
				point = t;
		if (!point || !type || strcmp(type, "fuse.topicfs"))
			continue;
		unescape_mountinfo(point);
		found = !strcmp(point, mnt);
	}
	free(line);
	fclose(f);
	return found;
}

/*
 * Checks the mount point and resolves it into mnt (PATH_MAX bytes).  A
 * daemon killed with -9 leaves a mount whose statfs fails with ENOTCONN:
 * say so, and with `takeover` detach it.  A live topicfs already mounted
 * there is refused: mounting over it would hide it, not replace it.
 */
static int check_mountpoint(const char *path, bool takeover, char *mnt)
{
	struct statfs sfs;
	struct stat st;

	/* statfs always reaches the file system (stat may be answered from
	 * the kernel's attribute cache of a dead mount). */
	if (statfs(path, &sfs) == 0 && stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			fprintf(stderr, "topicfs: %s is not a directory\n",
				path);
			return -1;
		}
		if (!realpath(path, mnt)) {
			fprintf(stderr, "topicfs: mount point %s: %s\n", path,
				strerror(errno));
			return -1;
		}
		if (is_topicfs_mount(mnt)) {
			fprintf(stderr,
				"topicfs: %s is already mounted by a running "
				"topicfs; unmount it first (`umount %s`)\n",
				mnt, mnt);
			return -1;
		}
		return 0;
	}
	if (errno == ENOTCONN) {
		if (!takeover) {
			fprintf(stderr,
				"topicfs: %s is a stale mount left by a "
				"topicfs that died; unmount it with "
				"`fusermount3 -u -z %s`, or start with "
				"-o takeover\n",
				path, path);
			return -1;
		}
		if (umount2(path, MNT_DETACH) < 0) {
			fprintf(stderr, "topicfs: cannot detach the stale "
					"mount at %s: %s\n",
				path, strerror(errno));
			return -1;
		}
		tfs_warn("took over the stale mount at %s", path);
		return check_mountpoint(path, false, mnt);
	}
	fprintf(stderr, "topicfs: mount point %s: %s\n", path, strerror(errno));
	return -1;
}

/* --- daemonisation and readiness -------------------------------------------- */

static int ready_fd = -1;

/*
 * Sends one sd_notify(3) datagram (protocol: systemd's sd_notify(3) and
 * "NOTIFY_SOCKET" in systemd.exec(5)): the text, KEY=VALUE lines, to the
 * AF_UNIX datagram socket named by $NOTIFY_SOCKET, a path or, with a
 * leading '@', an abstract name whose address length counts no trailing
 * NUL.  systemd takes the sender's pid from the socket credentials, so
 * with the default NotifyAccess=main it must be the main process: run
 * with -f under Type=notify.  A no-op without NOTIFY_SOCKET; written here
 * rather than linking libsystemd for one sendto().
 */
static void sd_notify(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	len = strlen(path);
	if (len >= sizeof(sa.sun_path)) {
		tfs_warn("sd_notify: NOTIFY_SOCKET too long");
		return;
	}
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';	/* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		tfs_warn("sd_notify: socket: %s", strerror(errno));
		return;
	}
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) <
	    0)
		tfs_warn("sd_notify %s: %s", path, strerror(errno));
	close(fd);
}

static char notify_status[PATH_MAX * 2 + 64];

static void on_ready(void)
{
	sd_notify(notify_status);
	if (ready_fd < 0)
		return;
	int fd = open("/dev/null", O_RDWR);
	char ok = 0;

	tfs_log_use_syslog();
	if (write(ready_fd, &ok, 1) != 1)
		tfs_warn("cannot report readiness: %s", strerror(errno));
	close(ready_fd);
	ready_fd = -1;
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

/* Forks; the parent returns only its exit status. */
static int daemonize(void)
{
	int pfd[2];
	pid_t pid;
	char c;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		perror("topicfs: pipe");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		perror("topicfs: fork");
		return 1;
	}
	if (pid > 0) {
		close(pfd[1]);
		if (read(pfd[0], &c, 1) == 1 && c == 0)
			_exit(0);
		waitpid(pid, NULL, 0);
		_exit(1);
	}
	close(pfd[0]);
	ready_fd = pfd[1];
	setsid();
	if (chdir("/") < 0)
		return 1;
	return 0;
}

/* --- running: the start order, and the stop order in reverse ------------- */

static struct tfs_fs *volatile stop_target;

/* SIGTERM, SIGINT, SIGHUP: end the FUSE loop; run() stops the rest. */
static void on_stop_signal(int sig)
{
	struct tfs_fs *fs = stop_target;

	if (fs)
		tfs_fs_exit(fs);
}

/*
 * Blocks (or unblocks) the stop signals in the calling thread.  Blocked
 * while the store starts its threads, which inherit the mask: a stop
 * signal then reaches the main thread (or a FUSE worker), whose
 * interrupted wait makes the loop see the exit flag.  A signal that came
 * while blocked is delivered at the unblock.
 */
static void mask_stop_signals(bool block)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

static void set_stop_handler(void (*handler)(int))
{
	struct sigaction sa = { .sa_handler = handler };

	/* No SA_RESTART: the loop's waits must be interrupted. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* --- the cluster's part of the node ---------------------------------------- */

struct node_net {
	struct tfs_auth *auth;
	struct tfs_httpc *httpc;
	struct tfs_httpd *httpd;
	struct tfs_repl *repl;
	struct tfs_cluster *cluster;
	struct tfs_produce *produce;
	/* produce once made: the cluster's gone hook runs on its control
	 * thread, which starts before produce exists. */
	struct tfs_produce *_Atomic produce_live;
	struct tfs_remote *remote;
	struct tfs_repair *repair;
	atomic_ullong refused;
	atomic_llong last_refusal_log;
};

/* Every peer request is authenticated before it is routed (auth.h). */
static int check_peer(struct tfs_httpd_req *req, void *arg)
{
	struct node_net *nn = arg;
	size_t len;
	const void *body = tfs_httpd_body(req, &len);
	const char *why = NULL;
	uint32_t from;
	int rc = tfs_auth_verify(nn->auth, tfs_httpd_method(req),
				 tfs_httpd_target(req),
				 tfs_httpd_header(req, "X-Topicfs-Node"),
				 tfs_httpd_header(req, "X-Topicfs-Time"),
				 tfs_httpd_header(req, "X-Topicfs-Nonce"),
				 tfs_httpd_header(req, "X-Topicfs-Mac"), body,
				 len, tfs_now_ms(), &from, &why);

	if (rc == 0)
		return 0;
	atomic_fetch_add(&nn->refused, 1);
	if (tfs_log_due(&nn->last_refusal_log, 10000))
		tfs_warn("refused a peer request from %s: %s %s: %s (repeats "
			 "for 10 s are counted, not logged)",
			 tfs_httpd_peer(req), tfs_httpd_method(req),
			 tfs_httpd_path(req), why ? why : "bad signature");
	return 401;
}

/* The cluster's gone hook: a deleted topic leaves replication and the
 * produce layer's writer streams. */
static void topic_gone(void *arg, uint32_t topic)
{
	struct node_net *nn = arg;

	tfs_repl_forget_topic(nn->repl, topic);
	tfs_produce_forget_topic(atomic_load(&nn->produce_live), topic);
}

/* advertise, or http://<host name>:<listen port>. */
static void advertise_url(const struct tfs_conf *conf, char *buf, size_t len)
{
	const char *adv = tfs_conf_str(conf, TFS_CONF_ADVERTISE);
	const char *listen = tfs_conf_str(conf, TFS_CONF_LISTEN);
	const char *port = strrchr(listen, ':');
	char host[200] = "localhost";

	if (*adv) {
		snprintf(buf, len, "%s", adv);
		return;
	}
	gethostname(host, sizeof(host) - 1);
	snprintf(buf, len, "http://%s:%s", host, port ? port + 1 : "7092");
}

/*
 * Joins the cluster: peer authentication, the HTTP client and server,
 * replication, the etcd session, the produce layer, in that order (each
 * needs the ones before).  Returns 0 or an error (logged); on error
 * nothing is left running.
 */
static int net_start(struct node_net *nn, struct tfs_store *store,
		     const struct tfs_conf *conf)
{
	struct tfs_httpd_config hc = {
		.listen = tfs_conf_str(conf, TFS_CONF_LISTEN),
		.threads = (unsigned)tfs_conf_get(conf, TFS_CONF_HTTP_THREADS),
		.max_body = (size_t)tfs_conf_get(conf,
						 TFS_CONF_MAX_RECORD_BYTES) +
			    (4u << 20),
		.check = check_peer,
		.check_arg = nn,
	};
	uint32_t me = (uint32_t)tfs_conf_get(conf, TFS_CONF_NODE_ID);
	char advertise[256];
	int rc;

	advertise_url(conf, advertise, sizeof(advertise));
	rc = tfs_auth_load(tfs_conf_str(conf, TFS_CONF_CLUSTER_SECRET_FILE), me,
			   &nn->auth);
	if (rc == 0)
		rc = tfs_httpc_start("tfs-httpc", &nn->httpc);
	if (rc == 0)
		rc = tfs_httpd_new(&hc, &nn->httpd);
	if (rc)
		goto out_fail;
	struct tfs_repl_config rc_cfg = {
		.conf = conf, .store = store, .httpd = nn->httpd,
		.httpc = nn->httpc, .auth = nn->auth,
		.timers = tfs_store_timers(store), .me = me,
	};
	rc = tfs_repl_new(&rc_cfg, &nn->repl);
	if (rc)
		goto out_fail;
	struct tfs_cluster_config cc = {
		.conf = conf, .store = store, .advertise = advertise,
		.role = tfs_repl_role, .gone = topic_gone,
		.role_arg = nn->repl, .gone_arg = nn,
	};
	rc = tfs_cluster_start(&cc, &nn->cluster);
	if (rc)
		goto out_fail;
	struct tfs_produce_config pc = {
		.conf = conf, .store = store, .cluster = nn->cluster,
		.repl = nn->repl, .httpd = nn->httpd, .httpc = nn->httpc,
		.auth = nn->auth, .timers = tfs_store_timers(store),
	};
	rc = tfs_produce_new(&pc, &nn->produce);
	atomic_store(&nn->produce_live, nn->produce);
	struct tfs_remote_config rmc = {
		.conf = conf, .store = store, .cluster = nn->cluster,
		.httpd = nn->httpd, .httpc = nn->httpc, .auth = nn->auth,
		.timers = tfs_store_timers(store),
	};
	if (rc == 0)
		rc = tfs_remote_new(&rmc, &nn->remote);
	struct tfs_repair_config rpc = {
		.conf = conf, .store = store, .cluster = nn->cluster,
		.httpd = nn->httpd, .httpc = nn->httpc, .auth = nn->auth,
		.period_ms = 1000,
	};
	if (rc == 0)
		rc = tfs_repair_start(&rpc, &nn->repair);
	if (rc == 0)
		rc = tfs_repl_start(nn->repl, nn->cluster);
	if (rc == 0)
		rc = tfs_httpd_listen(nn->httpd);
	if (rc)
		goto out_fail;
	return 0;

out_fail:
	tfs_err("cannot join the cluster: %s", tfs_strerror(rc));
	return rc;
}

/* Leaves the cluster: HTTP, produce, replication, the etcd session. */
static void net_stop(struct node_net *nn)
{
	if (nn->httpd)
		tfs_httpd_quiesce(nn->httpd);
	tfs_produce_stop(nn->produce);
	tfs_repair_stop(nn->repair);
	/* The cluster stops calling the role hook before replication goes;
	 * replication's threads may still ask the cluster until it is freed. */
	tfs_cluster_stop(nn->cluster);
	tfs_repl_stop(nn->repl);
	tfs_httpc_stop(nn->httpc);
	tfs_produce_free(nn->produce);
	tfs_remote_free(nn->remote);
	tfs_cluster_free(nn->cluster);
	tfs_httpd_stop(nn->httpd, 1000);
	tfs_auth_free(nn->auth);
	memset(nn, 0, sizeof(*nn));
}

/*
 * Starts the node and serves until unmounted or stopped by a signal.  The
 * start order is store, compactor, scrubber, the cluster (in a cluster),
 * FUSE mount; the stop order is its reverse, so that nothing is stopped
 * while something started after it may still call it.
 */
static int run(const char *data_dir, const char *mnt, struct args *a,
	       const struct tfs_conf *conf)
{
	struct tfs_store *store;
	struct tfs_compactor *compactor = NULL;
	struct tfs_scrubber *scrubber = NULL;
	struct tfs_fs *fs = NULL;
	struct node_net nn = { 0 };
	bool cluster = *tfs_conf_str(conf, TFS_CONF_CLUSTER_ETCD);
	int rc;

	mask_stop_signals(true);
	set_stop_handler(on_stop_signal);
	rc = tfs_store_open(data_dir, conf, &store);
	if (rc) {
		fprintf(stderr, "topicfs: cannot open %s: %s\n", data_dir,
			tfs_strerror(rc));
		return rc;
	}
	rc = tfs_compactor_start(
		store, tfs_conf_get(conf, TFS_CONF_RETENTION_CHECK_INTERVAL_MS),
		&compactor);
	if (rc) {
		tfs_err("cannot start the compactor: %s", tfs_strerror(rc));
		goto out_store;
	}
	rc = tfs_scrubber_start(
		store, tfs_conf_get(conf, TFS_CONF_SCRUB_INTERVAL_MS),
		tfs_conf_get(conf, TFS_CONF_SCRUB_BYTES_PER_SECOND), &scrubber);
	if (rc) {
		tfs_err("cannot start the scrubber: %s", tfs_strerror(rc));
		goto out_compactor;
	}
	if (cluster && (rc = net_start(&nn, store, conf)) != 0)
		goto out_net;
	struct tfs_fs_config fc = {
		.mountpoint = mnt,
		.fuse_opts = a->fuse_opts,
		.max_threads = (unsigned)tfs_conf_get(conf,
						      TFS_CONF_FUSE_THREADS),
		.clone_fd = tfs_conf_get(conf, TFS_CONF_FUSE_CLONE_FD),
		.version = VERSION,
		.cluster = nn.cluster,
		.produce = nn.produce,
		.repl = nn.repl,
		.repair = nn.repair,
		.remote = nn.remote,
		.peer_refused = &nn.refused,
	};
	rc = tfs_fs_mount(store, &fc, &fs);
	if (rc)
		goto out_net;
	snprintf(notify_status, sizeof(notify_status),
		 "READY=1\nSTATUS=serving %s at %s", data_dir, mnt);
	on_ready();
	stop_target = fs;
	mask_stop_signals(false);
	rc = tfs_fs_serve(fs);
	/* From here a second SIGTERM must not cut the final syncs and the
	 * clean exit short. */
	set_stop_handler(SIG_IGN);
	stop_target = NULL;
	sd_notify("STOPPING=1\nSTATUS=closing the store");
	/* The cluster goes before the mount: writes waiting for a commit
	 * are answered (EIO) while their requests can still be. */
	net_stop(&nn);
	tfs_fs_close(fs);
	goto out_scrubber;
out_net:
	net_stop(&nn);
out_scrubber:
	tfs_scrubber_stop(scrubber);
out_compactor:
	tfs_compactor_stop(compactor);
out_store:
	/* What is left is the final sync and checkpoint. */
	tfs_store_close(store);
	tfs_info("stopped");
	return rc;
}

static void free_args(struct args *a)
{
	for (int i = 0; i < a->ncopies; i++)
		free(a->opt_copies[i]);
	tfs_buf_release(&a->overrides);
}

int main(int argc, char **argv)
{
	struct args a = { .overrides = TFS_BUF_INIT };
	char data_dir[PATH_MAX], mnt[PATH_MAX], fsname[PATH_MAX + 16];
	struct tfs_conf conf;
	int rc;

	rc = parse_args(argc, argv, &a);
	if (rc) {
		free_args(&a);
		return rc > 0 ? 0 : 1;
	}
	if (load_config(&a, &conf))
		goto out_fail;
	if (is_fd_mountpoint(a.mountpoint))
		snprintf(mnt, sizeof(mnt), "%s", a.mountpoint);
	else if (check_mountpoint(a.mountpoint, a.takeover, mnt))
		goto out_fail;
	if (mkdir(a.data_dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "topicfs: data directory %s: %s\n", a.data_dir,
			strerror(errno));
		goto out_fail;
	}
	if (!realpath(a.data_dir, data_dir)) {
		fprintf(stderr, "topicfs: data directory %s: %s\n", a.data_dir,
			strerror(errno));
		goto out_fail;
	}
	snprintf(fsname, sizeof(fsname), "fsname=%s", data_dir);
	if (add_fuse_opt(&a, fsname) || add_fuse_opt(&a, "subtype=topicfs") ||
	    add_fuse_opt(&a, "default_permissions"))
		goto out_fail;
	signal(SIGPIPE, SIG_IGN);
	if (!a.foreground && daemonize())
		goto out_fail;

	rc = run(data_dir, mnt, &a, &conf);
	tfs_conf_release(&conf);
	free_args(&a);
	return rc ? 1 : 0;

out_fail:
	tfs_conf_release(&conf);
	free_args(&a);
	return 1;
}
