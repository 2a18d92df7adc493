/*
 * notify-listen - a stand-in for systemd's notification socket, to test
 * topicfs under Type=notify without systemd running as PID 1.
 *
 *   notify-listen SOCKET [MOUNTPOINT]
 *
 * Binds an AF_UNIX datagram socket at SOCKET (a path, or @name for the
 * abstract namespace, as $NOTIFY_SOCKET may be), turns on SO_PASSCRED as
 * systemd does, prints "listening" and then one line per datagram:
 *
 *   pid=PID READY=1 STATUS=...        (newlines of the message as blanks)
 *
 * where PID comes from the kernel's credentials, as systemd reads it to
 * check NotifyAccess=main.  When a message holds READY=1 and MOUNTPOINT is
 * given, it then statfs()es MOUNTPOINT and adds a line "mounted=yes" if
 * it is a FUSE file system (the mount is live and answering) or
 * "mounted=no". It exits 0 after a message with STOPPING=1, or 1 after
 * 60 seconds without one.  Every line is flushed at once.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define FUSE_SUPER_MAGIC 0x65735546

static int has_line(const char *msg, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = msg; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (!strncmp(p, line, n) && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path, *mnt;
	time_t deadline = time(NULL) + 60;
	size_t len;
	int fd, one = 1;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: notify-listen SOCKET [MOUNTPOINT]\n");
		return 2;
	}
	path = argv[1];
	mnt = argc > 2 ? argv[2] : NULL;
	len = strlen(path);
	if (len >= sizeof(sa.sun_path)) {
		fprintf(stderr, "notify-listen: socket path too long\n");
		return 2;
	}
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	else
		unlink(path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    bind(fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) <
		    0 ||
	    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		perror("notify-listen");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("listening\n");

	for (;;) {
		char buf[4096], ctl[CMSG_SPACE(sizeof(struct ucred))];
		struct iovec iov = { buf, sizeof(buf) - 1 };
		struct msghdr mh = { .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = ctl,
				     .msg_controllen = sizeof(ctl) };
		struct pollfd pfd = { fd, POLLIN, 0 };
		long pid = -1;
		ssize_t n;
		int left = (int)(deadline - time(NULL));

		if (left <= 0 || poll(&pfd, 1, left * 1000) == 0) {
			printf("timeout\n");
			return 1;
		}
		n = recvmsg(fd, &mh, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("notify-listen: recvmsg");
			return 2;
		}
		buf[n] = '\0';
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
		     c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level == SOL_SOCKET &&
			    c->cmsg_type == SCM_CREDENTIALS) {
				struct ucred uc;

				memcpy(&uc, CMSG_DATA(c), sizeof(uc));
				pid = uc.pid;
			}
		}
		char shown[sizeof(buf)];

		memcpy(shown, buf, (size_t)n + 1);
		for (char *p = shown; *p; p++)
			if (*p == '\n')
				*p = ' ';
		printf("pid=%ld %s\n", pid, shown);
		if (mnt && has_line(buf, "READY=1")) {
			struct statfs st;

			printf("mounted=%s\n",
			       statfs(mnt, &st) == 0 &&
					       st.f_type == FUSE_SUPER_MAGIC
				       ? "yes"
				       : "no");
		}
		if (has_line(buf, "STOPPING=1"))
			return 0;
	}
}
