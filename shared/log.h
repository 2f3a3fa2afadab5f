/*
 * Logging for every process, in the OpenBSD shape: the plain forms append
 * strerror(errno), the ...x forms do not. Lines start with the role and pid
 * ("worker/1[830]: ..."). Output goes to stderr (with <N> priority prefixes
 * when stderr is the journal), or to a log file that SIGUSR1 reopens.
 * Never call from a signal handler or while holding a shm lock.
 */
#ifndef WP_LOG_H
#define WP_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_ERR = 0,
	LOG_LVL_WARN,
	LOG_LVL_NOTICE,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

extern const char *const log_level_name[];

/* Name this process in every following line ("master", "worker/2"). */
void log_procinit(const char *role);
void log_setlevel(enum log_level lvl);
enum log_level log_getlevel(void);
/* Parse "debug".."error"; returns 0 or WP_EINVAL. */
int log_level_parse(const char *s, enum log_level *lvl);
/*
 * Send lines to path (O_APPEND), or to stderr when path is NULL or empty.
 * Returns 0 or WP_ESYS; on failure the previous destination stays.
 */
int log_open(const char *path);
/* Reopen the current log file (SIGUSR1). */
int log_reopen(void);

void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/*
 * A short fingerprint of a secret for logs: "tok:" plus 8 hex digits of a
 * keyed hash. Returns buf.
 */
const char *log_tok(const char *secret, char *buf, unsigned len);
#define LOG_TOK_LEN 16

#endif
