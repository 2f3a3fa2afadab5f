/*
 * Process titles ("webproxyd: worker 1") as ps(1) shows them: the argv
 * area is overwritten, after moving the environment out of its way, as
 * nginx and OpenSSH do. Called in the master before forking and in each
 * child right after fork. Globals: the argv area, found once at start.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "mst.h"

extern char **environ;

static char *title_base; /* start of the original argv[0] */
static size_t title_len; /* bytes we may overwrite */

void
mst_title_init(int argc, char **argv)
{
	char *base = argv[0], *end = argv[0] + strlen(argv[0]);
	char **env;
	int i, n;

	for (i = 1; i < argc; i++)
		if (argv[i] == end + 1)
			end = argv[i] + strlen(argv[i]);
	for (n = 0; environ[n] != NULL; n++)
		if (environ[n] == end + 1)
			end = environ[n] + strlen(environ[n]);
	/* Move the environment and argv to the heap, then take the area. */
	if ((env = calloc((size_t)n + 1, sizeof(*env))) == NULL)
		return;
	for (i = 0; i < n; i++)
		if ((env[i] = strdup(environ[i])) == NULL)
			return; /* leave the title alone */
	environ = env;
	for (i = 0; i < argc; i++)
		if ((argv[i] = strdup(argv[i])) == NULL)
			return;
	title_base = base;
	title_len = (size_t)(end - base);
}

void
mst_title_set(const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	(void)prctl(PR_SET_NAME, buf, 0, 0, 0); /* comm: best effort */
	if (title_base == NULL || title_len < 2)
		return;
	memset(title_base, 0, title_len + 1);
	memcpy(
	    title_base, buf, (size_t)n < title_len ? (size_t)n : title_len - 1);
}
