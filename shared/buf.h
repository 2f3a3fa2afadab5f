/*
 * A growable byte buffer with a hard cap set when it is created: a
 * misbehaving client or upstream cannot grow a process without bound.
 * Always NUL-terminated (the NUL is not counted in len).
 */
#ifndef WP_BUF_H
#define WP_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	char *p;
	size_t len;
	size_t cap; /* allocated */
	size_t max; /* hard cap on len */
};

/* Empty, owning nothing yet; max is the ceiling for len. */
void buf_init(struct buf *b, size_t max);
void buf_fini(struct buf *b);
/* Forget the contents, keep the memory. */
void buf_reset(struct buf *b);
/* Cut back to the first len bytes (len <= b->len): undo a partial append. */
void buf_truncate(struct buf *b, size_t len);
/* Returns 0, WP_ETOOBIG (would pass max; b unchanged) or WP_ENOMEM. */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
/* v in decimal, as printf's %lld writes it. */
int buf_put_i64(struct buf *b, int64_t v);
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * Append the n bytes at s as a JSON string, quotes included, escaped as
 * jansson dumps it (s must be valid UTF-8). Returns as buf_append; on
 * an error b is unchanged.
 */
int buf_json_str(struct buf *b, const char *s, size_t n);
/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Hand the contents to the caller (malloc'ed, NUL-terminated; NULL if
 * empty and never allocated); b is left empty. */
char *buf_take(struct buf *b);

#endif
