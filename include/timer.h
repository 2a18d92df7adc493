/*
 * timer.h - deadlines: one thread that runs a callback when a timer's time
 * (on the monotonic clock) has come.
 *
 * Parked requests with a deadline (a long-poll fetch, a wait with a
 * timeout, a forwarded write's retry) arm a timer instead of holding a
 * thread.  The timers live in a binary heap: arming and disarming cost
 * O(log n) under the timers' lock; the thread sleeps until the earliest.
 *
 * A timer is embedded in its owner.  fn runs on the timer thread with no
 * lock held and may free the owner (the thread does not touch the timer
 * after calling fn) or re-arm it.
 */
#ifndef TFS_TIMER_H
#define TFS_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tfs_timers;

struct tfs_timer {
	void (*fn)(struct tfs_timer *t);
	/* private (timers lock) */
	int64_t when;
	size_t slot;		/* heap position + 1; 0 when not armed */
};

/* Starts the timer thread.  Returns 0 or -errno. */
int tfs_timers_start(const char *name, struct tfs_timers **out);

/* Stops the thread (waits for a running fn); armed timers never fire.
 * NULL is fine. */
void tfs_timers_stop(struct tfs_timers *ts);

/*
 * Arms t to run t->fn at `when` (tfs_mono_ms() time; a past time runs it
 * at once on the timer thread).  Re-arming an armed timer moves it.  Any
 * thread, fn included.
 */
void tfs_timer_arm(struct tfs_timers *ts, struct tfs_timer *t, int64_t when);

/*
 * Disarms t.  Returns true if it was armed (its fn will not run), false
 * if it was not (never armed, or its fn already started).  When its fn is
 * running on the timer thread, waits for it to return first, unless
 * called from the timer thread itself: after this returns, fn does not
 * touch anything of t's owner unless it re-armed t.
 */
bool tfs_timer_disarm(struct tfs_timers *ts, struct tfs_timer *t);

#endif
