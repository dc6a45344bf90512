/* buf.h -- byte buffers: growable scratch buffers, and shared reference-counted
 * buffers that are written to many sockets (one encoded frame, N subscribers). */
#ifndef HERALD_BUF_H
#define HERALD_BUF_H

#include <stddef.h>
#include <stdint.h>

/* A growable buffer owned by one user. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_appends(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
void buf_append_json_str(struct buf *b, const char *s, size_t n);
/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

/* An immutable, reference-counted buffer. Created with one reference; every
 * queue that holds it takes one with sbuf_ref and drops it with sbuf_unref. */
struct sbuf {
	uint32_t refs;
	uint32_t len;
	char data[];
};

struct sbuf *sbuf_new(size_t len);              /* data uninitialised */
struct sbuf *sbuf_from(const void *p, size_t len);
static inline struct sbuf *sbuf_ref(struct sbuf *s) { s->refs++; return s; }
void sbuf_unref(struct sbuf *s);

#endif
