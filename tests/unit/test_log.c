/*
 * Unit tests for the logging module: the line format, levels, one line
 * per call, long messages, and the escaping of untrusted bytes (a name
 * with a newline must not forge a second line).  Lines written to stderr
 * are captured through a temporary file.
 */
#include <fcntl.h>
#include <regex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "util.h"

static char tmpfile_path[] = "/tmp/test_log.XXXXXX";
static int cap_fd = -1, saved_stderr = -1;
static char captured[16384];

/* Sends stderr to an empty temporary file. */
static void capture_start(void)
{
	if (ftruncate(cap_fd, 0) != 0 || lseek(cap_fd, 0, SEEK_SET) != 0) {
		perror("capture");
		exit(2);
	}
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	dup2(cap_fd, STDERR_FILENO);
}

/* Restores stderr; what was written is in captured[], NUL-terminated. */
static size_t capture_end(void)
{
	ssize_t n;

	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	n = pread(cap_fd, captured, sizeof(captured) - 1, 0);
	if (n < 0)
		n = 0;
	captured[n] = '\0';
	return (size_t)n;
}

#define CAPTURE(stmt)            \
	({                       \
		capture_start(); \
		stmt;            \
		capture_end();   \
	})

static int count_char(const char *s, char c)
{
	int n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

/* The message part of a captured line: what follows "<level>: ". */
static const char *message_of(const char *line, const char *level)
{
	char tag[32];
	const char *p;

	snprintf(tag, sizeof(tag), "] %s: ", level);
	p = strstr(line, tag);
	return p ? p + strlen(tag) : "";
}

static int matches(const char *s, const char *re)
{
	regex_t r;
	int ok;

	if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB) != 0)
		return 0;
	ok = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

static void test_format(void)
{
	char want[64];
	size_t n;

	TEST("a line: UTC time with ms, topicfs[pid], level, message");
	tfs_log_set_level(TFS_LOG_INFO);
	n = CAPTURE(tfs_info("hello %d %s", 42, "world"));
	CHECKF(matches(captured, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
				 "[0-9]{2}\\.[0-9]{3}Z topicfs\\[[0-9]+\\] "
				 "info: hello 42 world\n$"),
	       "%s", captured);
	snprintf(want, sizeof(want), " topicfs[%d] info: ", (int)getpid());
	CHECK(strstr(captured, want) != NULL);
	CHECK_EQ(n, strlen(captured));
	CHECK_EQ(count_char(captured, '\n'), 1);

	TEST("each level is named");
	tfs_log_set_level(TFS_LOG_DEBUG);
	CAPTURE(tfs_err("e"));
	CHECKF(strstr(captured, "] error: e\n") != NULL, "%s", captured);
	CAPTURE(tfs_warn("w"));
	CHECKF(strstr(captured, "] warn: w\n") != NULL, "%s", captured);
	CAPTURE(tfs_info("i"));
	CHECKF(strstr(captured, "] info: i\n") != NULL, "%s", captured);
	CAPTURE(tfs_debug("d"));
	CHECKF(strstr(captured, "] debug: d\n") != NULL, "%s", captured);
}

static void test_levels(void)
{
	TEST("messages less severe than the level are dropped");
	tfs_log_set_level(TFS_LOG_WARN);
	CHECK_EQ(tfs_log_get_level(), TFS_LOG_WARN);
	CHECK_EQ(CAPTURE(tfs_info("not shown")), 0);
	CHECK_EQ(CAPTURE(tfs_debug("not shown")), 0);
	CHECK(CAPTURE(tfs_warn("shown")) > 0);
	CHECK(CAPTURE(tfs_err("shown")) > 0);
	tfs_log_set_level(TFS_LOG_ERROR);
	CHECK_EQ(CAPTURE(tfs_warn("not shown")), 0);
	CHECK(CAPTURE(tfs_log(TFS_LOG_ERROR, "shown")) > 0);
	tfs_log_set_level(TFS_LOG_DEBUG);
	CHECK(CAPTURE(tfs_debug("shown")) > 0);
	tfs_log_set_level(TFS_LOG_INFO);
	CHECK_EQ(CAPTURE(tfs_debug("not shown")), 0);
}

static void test_escaping(void)
{
	const char *forged = "x\n2026-01-01T00:00:00.000Z topicfs[1] error: "
			     "forged";

	TEST("a newline in an argument cannot forge a second line");
	tfs_log_set_level(TFS_LOG_INFO);
	CAPTURE(tfs_info("mkdir %s: invalid topic name", forged));
	CHECKF(count_char(captured, '\n') == 1, "%s", captured);
	CHECKF(!strcmp(message_of(captured, "info"),
		       "mkdir x\\x0a2026-01-01T00:00:00.000Z topicfs[1] "
		       "error: forged: invalid topic name\n"),
	       "%s", captured);

	TEST("control bytes and DEL are \\xHH, tab stays, backslash doubles");
	CAPTURE(tfs_warn("%s", "a\rb\x1b[31mc\x7f" "d\te\\f\x01"));
	CHECKF(!strcmp(message_of(captured, "warn"),
		       "a\\x0db\\x1b[31mc\\x7fd\te\\\\f\\x01\n"),
	       "%s", captured);

	TEST("the format string is escaped too; UTF-8 passes unchanged");
	CAPTURE(tfs_err("two\nlines \xc3\xa9t\xc3\xa9 \x80\xff"));
	CHECKF(!strcmp(message_of(captured, "error"),
		       "two\\x0alines \xc3\xa9t\xc3\xa9 \x80\xff\n"),
	       "%s", captured);

	TEST("no byte below 0x20 but tab, nor 0x7f, reaches the log");
	char all[256];
	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	size_t n = CAPTURE(tfs_info("%s", all));
	int raw = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		unsigned char c = (unsigned char)captured[i];
		raw += (c < 0x20 && c != '\t') || c == 0x7f;
	}
	CHECK_EQ(raw, 0);
	CHECK_EQ(captured[n - 1], '\n');
}

static void test_long(void)
{
	static char big[8000];
	size_t n;

	TEST("a long message is cut, still one line");
	tfs_log_set_level(TFS_LOG_INFO);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	n = CAPTURE(tfs_info("%s", big));
	CHECK_EQ(count_char(captured, '\n'), 1);
	CHECK_EQ(captured[n - 1], '\n');
	CHECKF(strlen(message_of(captured, "info")) == 2047 + 1, "%zu",
	       strlen(message_of(captured, "info")));

	TEST("a long message of escapes is cut between escapes");
	memset(big, '\n', sizeof(big) - 1);
	n = CAPTURE(tfs_info("%s", big));
	CHECK_EQ(count_char(captured, '\n'), 1);
	CHECK_EQ(captured[n - 1], '\n');
	CHECK(n <= 4096);
	const char *m = message_of(captured, "info");
	size_t ml = strlen(m) - 1;
	CHECKF(ml % 4 == 0 && ml > 0, "%zu", ml);
	CHECK(!strncmp(m + ml - 4, "\\x0a", 4));
}

static void test_escape_fn(void)
{
	char buf[16];

	TEST("tfs_log_escape: lengths, NUL, cuts between escapes");
	CHECK_EQ(tfs_log_escape(buf, sizeof(buf), "abc", 3), 3);
	CHECK(!strcmp(buf, "abc"));
	CHECK_EQ(tfs_log_escape(buf, sizeof(buf), "a\nb", 3), 6);
	CHECK(!strcmp(buf, "a\\x0ab"));
	/* An embedded NUL counts as a control byte when n includes it. */
	CHECK_EQ(tfs_log_escape(buf, sizeof(buf), "a\0b", 3), 6);
	CHECK(!strcmp(buf, "a\\x00b"));
	CHECK_EQ(tfs_log_escape(buf, sizeof(buf), "\\", 1), 2);
	CHECK(!strcmp(buf, "\\\\"));
	/* Room for "ab" and not for the whole of "\x0a". */
	CHECK_EQ(tfs_log_escape(buf, 6, "ab\ncd", 5), 2);
	CHECK(!strcmp(buf, "ab"));
	CHECK_EQ(tfs_log_escape(buf, 7, "ab\ncd", 5), 6);
	CHECK(!strcmp(buf, "ab\\x0a"));
	CHECK_EQ(tfs_log_escape(buf, 1, "abc", 3), 0);
	CHECK(!strcmp(buf, ""));
	buf[0] = 'z';
	CHECK_EQ(tfs_log_escape(buf, 0, "abc", 3), 0);
	CHECK_EQ(buf[0], 'z');
	CHECK_EQ(tfs_log_escape(buf, sizeof(buf), "", 0), 0);
	CHECK(!strcmp(buf, ""));
}

static void test_due(void)
{
	atomic_llong last = 0;

	TEST("tfs_log_due: true at first, then not again within the period");
	CHECK(tfs_log_due(&last, 100000));
	CHECK(atomic_load(&last) != 0);
	for (int i = 0; i < 1000; i++)
		CHECK(!tfs_log_due(&last, 100000));

	TEST("tfs_log_due: true again once the period passed");
	atomic_store(&last, tfs_mono_ms() - 100001);
	CHECK(tfs_log_due(&last, 100000));
	CHECK(!tfs_log_due(&last, 100000));

	TEST("tfs_log_due: a period of 0 is always due");
	CHECK(tfs_log_due(&last, 0));
	CHECK(tfs_log_due(&last, 0));
}

int main(void)
{
	cap_fd = mkstemp(tmpfile_path);
	if (cap_fd < 0) {
		perror("mkstemp");
		return 2;
	}
	unlink(tmpfile_path);
	test_format();
	test_levels();
	test_escaping();
	test_long();
	test_escape_fn();
	test_due();
	close(cap_fd);
	return check_done();
}
