/*
 * check.h - the unit-test harness: CHECK() records a pass or a failure
 * (with file, line and the expression), TEST() names the running case, and
 * check_done() prints "N passed, N failed" and gives the exit status.
 */
#ifndef TFS_CHECK_H
#define TFS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_passed, check_failed;
static const char *check_case = "";

#define TEST(name)                                   \
	do {                                         \
		check_case = (name);                 \
		fprintf(stderr, "# %s\n", check_case); \
	} while (0)

#define CHECK(cond)                                                        \
	do {                                                               \
		if (cond) {                                                \
			check_passed++;                                    \
		} else {                                                   \
			check_failed++;                                    \
			fprintf(stderr, "FAIL %s:%d [%s]: %s\n", __FILE__, \
				__LINE__, check_case, #cond);              \
		}                                                          \
	} while (0)

/* CHECK with a printf-style explanation on failure. */
#define CHECKF(cond, ...)                                                  \
	do {                                                               \
		if (cond) {                                                \
			check_passed++;                                    \
		} else {                                                   \
			check_failed++;                                    \
			fprintf(stderr, "FAIL %s:%d [%s]: %s: ", __FILE__, \
				__LINE__, check_case, #cond);              \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
		}                                                          \
	} while (0)

/* CHECK that two integers are equal, printing both on failure. */
#define CHECK_EQ(a, b)                                                     \
	do {                                                               \
		long long check_a_ = (long long)(a);                       \
		long long check_b_ = (long long)(b);                       \
		CHECKF(check_a_ == check_b_, "%lld != %lld", check_a_,     \
		       check_b_);                                          \
	} while (0)

static inline int check_done(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed ? 1 : 0;
}

#endif
