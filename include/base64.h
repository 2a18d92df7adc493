/*
 * base64.h - standard base64 (RFC 4648 section 4: "+/" alphabet, "="
 * padding), as etcd's JSON gateway carries keys and values.  A leaf
 * module: libc and util only.
 */
#ifndef TFS_BASE64_H
#define TFS_BASE64_H

#include <stddef.h>

#include "util.h"

/* Appends the encoding of p[0..n) to out (NUL-terminated, as always). */
void tfs_base64_encode(struct tfs_buf *out, const void *p, size_t n);

/*
 * Appends the bytes text[0..n) encodes to out.  Strict: the length must
 * be a multiple of 4, only the alphabet, padding only at the end, and no
 * stray bits in the last character.  Returns 0, or -EINVAL (out is then
 * as it was).  Any thread.
 */
int tfs_base64_decode(struct tfs_buf *out, const char *text, size_t n);

#endif
