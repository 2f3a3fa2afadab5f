/*
 * token.json: the token pool on disk, in the seed's schema
 * ({"ssoNormal":{<token>:{createdTime, remainingQueries,
 * heavyremainingQueries, status, failedCount, lastFailureTime,
 * lastFailureReason, tags, note}}, "ssoSuper":{...}}), plus our fields
 * cooldownUntil and lastUsedTime. Fields we do not know are kept.
 *
 * Only the master calls these, tokfile_dump aside. A struct tokfile is
 * what the file last read or written says, kept compact (the master holds
 * one all its life): it is the base of the three-way merge that SIGHUP
 * does, and the keeper of unknown fields.
 */
#ifndef WP_TOKFILE_H
#define WP_TOKFILE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tok.h"

struct tokfile;

/*
 * Read path. A missing file gives an empty document (0). A file that does
 * not parse or breaks the schema returns WP_EPARSE with
 * "path:line:col: problem" in err. Returns 0, WP_EPARSE, WP_ENOMEM, WP_ESYS.
 */
int tokfile_read(
    const char *path, struct tokfile **fp, char *err, size_t errlen);
/*
 * tokfile_read that counts, in *seen, the entries read so far (every
 * TOKFILE_SEEN_STEP, relaxed): the master faults the token table's rows
 * in on another thread while the file is read. Entries jansson reads
 * (an unusual file) are not counted.
 */
#define TOKFILE_SEEN_STEP 1024
int tokfile_read_seen(const char *path, struct tokfile **fp, char *err,
    size_t errlen, _Atomic uint32_t *seen);
void tokfile_free(struct tokfile *f);
/*
 * In a child just forked from the master: let go of its copy of f, so
 * the child's memory no longer counts it. Nothing is wiped: the master
 * holds the same pages.
 */
void tokfile_forget(struct tokfile *f);

/* Tests: jansson alone, or the scanner alone (WP_EPARSE where it would
 * hand the text to jansson). */
#define TOKFILE_SLOW 1u
#define TOKFILE_FAST 2u
/*
 * tokfile_read of text in memory (no byte-order mark); path only names
 * it in errors. flags: 0 (what tokfile_read does) or one of the above.
 * Returns 0, WP_EPARSE, WP_ENOMEM.
 */
int tokfile_parse(const char *path, const char *text, size_t len,
    unsigned flags, struct tokfile **fp, char *err, size_t errlen);
/* Tests: the same tokens in the same order, fields and unknown fields. */
bool tokfile_same(const struct tokfile *a, const struct tokfile *b);
/* Tokens in the document. */
size_t tokfile_count(const struct tokfile *f);

/*
 * Start-up: add every token of f to the empty table t. Returns 0,
 * WP_ETOOBIG (more tokens than grok.max_tokens; err says so).
 */
int tokfile_load(
    struct tok_table *t, const struct tokfile *f, char *err, size_t errlen);

/*
 * SIGHUP: fold the operator's edits into the live table. base is what we
 * last read or wrote, edited what is on disk now. Tokens new in edited are
 * added; tokens in base but gone from edited are removed; a field whose
 * value differs between base and edited takes the edited value; every
 * other field keeps its live value. Tokens added live since base stay;
 * tokens deleted live since base stay deleted unless edited by hand.
 * Counts what it did into *added, *removed, *changed (may be NULL).
 * Returns 0, or WP_ETOOBIG when the result would not fit the table
 * (checked first: nothing changed then), or the first other error (the
 * remaining tokens are merged anyway). Afterwards the caller makes edited
 * the new base (it holds the operator's unknown fields).
 */
int tokfile_merge(struct tok_table *t, const struct tokfile *base,
    const struct tokfile *edited, unsigned *added, unsigned *removed,
    unsigned *changed);

/*
 * Write the live table to path atomically (temp file in the same folder,
 * fsync, rename, fsync of the folder; mode 0600; missing folders made
 * 0700), keeping the unknown fields of *basep (NULL: none). Once renamed,
 * *basep becomes the document written. On failure before the rename the
 * old file is untouched and no temp file is left. Returns 0, WP_ESYS
 * (errno says why; also when only the folder's fsync failed), WP_ENOMEM.
 */
int tokfile_write(
    struct tok_table *t, const char *path, struct tokfile **basep);

/*
 * The live table as token.json text (what tokfile_write writes, less the
 * fields of the file we do not know), malloc'ed and NUL-terminated. It
 * holds every token: the caller wipes it before freeing. NULL on ENOMEM.
 * Any process (the admin panel's export runs in a worker).
 */
char *tokfile_dump(struct tok_table *t);

#endif
