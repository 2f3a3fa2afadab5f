/*
 * What the fuzz targets share (test/fuzz/README.md): libFuzzer's entry
 * points, invariant checks that abort with a message, reading parameters
 * and strings off the front of an input, and handing an input to a
 * loader that wants a path. Each target fz_<name>.c links with fuzz.c,
 * and with libFuzzer (make fuzz) or with replay.c (make test).
 */
#ifndef WP_FUZZ_H
#define WP_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry points; replay.c calls them the same way. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The target's name: corpus/<name>/ and regress/<name>/ hold its inputs. */
extern const char fuzz_name[];

/* An invariant of the code under test; a failure aborts (a "crash"). */
#define FUZZ_CHECK(e)                                                          \
	do {                                                                   \
		if (!(e))                                                      \
			fuzz_fail(__FILE__, __LINE__, #e);                     \
	} while (0)

void fuzz_fail(const char *file, int line, const char *expr)
    __attribute__((noreturn));

/* sodium_init() and the like; every target's LLVMFuzzerInitialize. */
void fuzz_init(void);

/* An input read from the front; past its end every read gives zeros. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

uint8_t fuzz_u8(struct fuzz_in *in);
uint16_t fuzz_u16(struct fuzz_in *in);
uint32_t fuzz_u32(struct fuzz_in *in);
/*
 * The bytes up to the next NUL (consumed) or the end, as a malloc'ed
 * string of exactly that size plus its NUL, so ASan sees any read past
 * it. Aborts on ENOMEM.
 */
char *fuzz_str(struct fuzz_in *in);
/* A malloc'ed copy of n bytes with no NUL after them (ASan-tight). */
char *fuzz_dup(const void *p, size_t n);

/*
 * The input as a file: a memfd holding data, and its /proc/self/fd path
 * in path. Returns the fd (the caller closes it); aborts on failure.
 */
int fuzz_memfd(const void *data, size_t len, char *path, size_t pathlen);

/* Whether s[0..n) is well-formed UTF-8 (no overlongs or surrogates). */
bool fuzz_utf8_ok(const char *s, size_t n);

#endif
