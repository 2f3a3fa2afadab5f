/*
 * Logging (see log.h). Each process has its own destination fd; one
 * write() per line so lines from several processes never interleave.
 * Globals: the process's role, level and destination, set once at start
 * and on SIGUSR1; logging is not called from signal handlers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"
#include "log.h"
#include "util.h"

const char *const log_level_name[] = {
	[LOG_LVL_ERR] = "error",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_NOTICE] = "notice",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

/* syslog priorities, for the <N> prefix journald reads. */
static const int log_prio[] = {
	[LOG_LVL_ERR] = 3,
	[LOG_LVL_WARN] = 4,
	[LOG_LVL_NOTICE] = 5,
	[LOG_LVL_INFO] = 6,
	[LOG_LVL_DEBUG] = 7,
};

static char log_role[32] = "webproxyd";
static enum log_level log_lvl = LOG_LVL_NOTICE;
static int log_fd = 2;
static char log_path[512];
static int log_journal = -1; /* stderr is the journal: use <N> prefixes */

void
log_procinit(const char *role)
{
	(void)util_strlcpy(log_role, role, sizeof(log_role)); /* short */
}

void
log_setlevel(enum log_level lvl)
{
	log_lvl = lvl;
}

enum log_level
log_getlevel(void)
{
	return log_lvl;
}

int
log_level_parse(const char *s, enum log_level *lvl)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(log_level_name); i++) {
		if (strcmp(s, log_level_name[i]) == 0) {
			*lvl = (enum log_level)i;
			return 0;
		}
	}
	return WP_EINVAL;
}

int
log_open(const char *path)
{
	int fd;

	if (path == NULL || *path == '\0') {
		if (log_fd > 2)
			close_fd(&log_fd);
		log_fd = 2;
		log_path[0] = '\0';
		return 0;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return WP_ESYS;
	if (log_fd > 2)
		close_fd(&log_fd);
	log_fd = fd;
	if (path != log_path)
		(void)util_strlcpy(log_path, path, sizeof(log_path));
	return 0;
}

int
log_reopen(void)
{
	if (log_path[0] == '\0')
		return 0;
	return log_open(log_path);
}

static void
log_vemit(enum log_level lvl, int errnum, const char *fmt, va_list ap)
{
	char line[2048];
	size_t off = 0;
	int n;

	if (lvl > log_lvl)
		return;
	if (log_journal < 0)
		log_journal = getenv("JOURNAL_STREAM") != NULL;
	if (log_fd == 2 && log_journal) {
		n = snprintf(line, sizeof(line), "<%d>", log_prio[lvl]);
	} else {
		struct timespec ts;
		struct tm tm;

		(void)clock_gettime(CLOCK_REALTIME, &ts);
		(void)localtime_r(&ts.tv_sec, &tm);
		n = (int)strftime(
		    line, sizeof(line), "%Y-%m-%d %H:%M:%S ", &tm);
	}
	off = n > 0 ? (size_t)n : 0;
	n = snprintf(line + off, sizeof(line) - off, "%s[%d]: %s: ", log_role,
	    (int)getpid(), log_level_name[lvl]);
	if (n > 0)
		off += (size_t)n;
	if (off < sizeof(line)) {
		n = vsnprintf(line + off, sizeof(line) - off, fmt, ap);
		if (n > 0)
			off += (size_t)n;
	}
	if (errnum != 0 && off < sizeof(line)) {
		n = snprintf(
		    line + off, sizeof(line) - off, ": %s", strerror(errnum));
		if (n > 0)
			off += (size_t)n;
	}
	if (off >= sizeof(line) - 1)
		off = sizeof(line) - 2; /* long line: cut, keep the newline */
	line[off++] = '\n';
	(void)util_write_all(log_fd, line, off); /* nowhere to report it */
}

#define LOG_FN(name, lvl, witherr)                                             \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		int e = (witherr) ? errno : 0;                                 \
		va_list ap;                                                    \
                                                                               \
		va_start(ap, fmt);                                             \
		log_vemit(lvl, e, fmt, ap);                                    \
		va_end(ap);                                                    \
		errno = e ? e : errno;                                         \
	}

LOG_FN(log_err, LOG_LVL_ERR, 1)
LOG_FN(log_errx, LOG_LVL_ERR, 0)
LOG_FN(log_warn, LOG_LVL_WARN, 1)
LOG_FN(log_warnx, LOG_LVL_WARN, 0)
LOG_FN(log_notice, LOG_LVL_NOTICE, 0)
LOG_FN(log_info, LOG_LVL_INFO, 0)
LOG_FN(log_debug, LOG_LVL_DEBUG, 0)

void
fatal(const char *fmt, ...)
{
	int e = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERR, e, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

const char *
log_tok(const char *secret, char *buf, unsigned len)
{
	unsigned char h[4];

	/* Unkeyed: the same token gives the same print in every process. */
	crypto_generichash(h, sizeof(h), (const unsigned char *)secret,
	    strlen(secret), NULL, 0);
	(void)snprintf(
	    buf, len, "tok:%02x%02x%02x%02x", h[0], h[1], h[2], h[3]);
	return buf;
}
