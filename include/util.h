/*
 * util.h - small helpers every module uses: allocation that aborts on
 * out-of-memory, clocks, an intrusive doubly-linked list and a growable
 * byte buffer.
 */
#ifndef TFS_UTIL_H
#define TFS_UTIL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define TFS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TFS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TFS_MAX(a, b) ((a) > (b) ? (a) : (b))
#define tfs_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/*
 * Reference counts.  Anything another thread can find through a lock
 * (segments, partitions, topics, open files, parked requests) carries one:
 * the finder takes a reference before dropping the lock, and the last put
 * frees.  Taking needs no ordering (the finder already holds a reference
 * or the lock that publishes the object); the last put must see every
 * write made under earlier references, hence acquire-release.
 */
static inline void tfs_ref_init(atomic_int *r, int n)
{
	atomic_init(r, n);
}

static inline void tfs_ref_get(atomic_int *r)
{
	atomic_fetch_add_explicit(r, 1, memory_order_relaxed);
}

/* Drops a reference; true when it was the last (the caller frees). */
static inline bool tfs_ref_put(atomic_int *r)
{
	return atomic_fetch_sub_explicit(r, 1, memory_order_acq_rel) == 1;
}

/* Allocation: never returns NULL; prints and aborts when memory is out. */
void *tfs_malloc(size_t n);
void *tfs_calloc(size_t nmemb, size_t size);
void *tfs_realloc(void *p, size_t n);
char *tfs_strdup(const char *s);
char *tfs_asprintf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* Clocks, in milliseconds or nanoseconds. */
int64_t tfs_now_ms(void);		/* CLOCK_REALTIME: commit timestamps */
int64_t tfs_mono_ms(void);		/* CLOCK_MONOTONIC: intervals */
int64_t tfs_mono_ns(void);
/* CLOCK_BOOTTIME: like the monotonic clock, but it also counts the time
 * the machine was suspended, as the etcd lease's TTL does. */
int64_t tfs_boot_ms(void);

/* Intrusive circular doubly-linked list (the kernel's list_head). */
struct tfs_list {
	struct tfs_list *next, *prev;
};

static inline void tfs_list_init(struct tfs_list *l)
{
	l->next = l->prev = l;
}

static inline bool tfs_list_empty(const struct tfs_list *l)
{
	return l->next == l;
}

static inline void tfs_list_insert_after(struct tfs_list *pos,
					 struct tfs_list *n)
{
	n->prev = pos;
	n->next = pos->next;
	pos->next->prev = n;
	pos->next = n;
}

static inline void tfs_list_add_tail(struct tfs_list *head, struct tfs_list *n)
{
	tfs_list_insert_after(head->prev, n);
}

static inline void tfs_list_del(struct tfs_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

/* Moves every element of from to the end of to; from becomes empty. */
static inline void tfs_list_splice_tail(struct tfs_list *to,
					struct tfs_list *from)
{
	if (tfs_list_empty(from))
		return;
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	tfs_list_init(from);
}

/* A growable byte buffer, always NUL-terminated (git's strbuf). */
struct tfs_buf {
	char *data;
	size_t len, cap;
};

#define TFS_BUF_INIT { NULL, 0, 0 }

void tfs_buf_grow(struct tfs_buf *b, size_t extra);
void tfs_buf_add(struct tfs_buf *b, const void *p, size_t n);
void tfs_buf_addf(struct tfs_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void tfs_buf_vaddf(struct tfs_buf *b, const char *fmt, va_list ap);
/* Drops the first n bytes. */
void tfs_buf_consume(struct tfs_buf *b, size_t n);
void tfs_buf_reset(struct tfs_buf *b);
void tfs_buf_release(struct tfs_buf *b);
/* Hands the bytes to the caller (who frees them) and resets b. */
char *tfs_buf_detach(struct tfs_buf *b, size_t *len);

/* Little-endian integers in on-disk formats, whatever the host order. */
static inline void tfs_put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static inline void tfs_put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void tfs_put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint16_t tfs_get_le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t tfs_get_le32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint64_t tfs_get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Counts '\n' bytes in p[0..n). */
size_t tfs_count_newlines(const void *p, size_t n);

#endif
