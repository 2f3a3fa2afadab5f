/*
 * A fuzz target without libFuzzer: runs LLVMFuzzerTestOneInput once on
 * each file of corpus/<name>/ and regress/<name>/ (or on the files and
 * folders given as arguments), each in a child process with a time
 * limit, so one crash or hang fails that input alone. Built as
 * build/test/t_fuzz_<name> and run with the unit tests; prints "ok - " /
 * "not ok - " per input and the harness's "N passed, N failed" line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"

#ifndef FUZZ_DIR
#define FUZZ_DIR "test/fuzz" /* the Makefile passes an absolute path */
#endif

#define REPLAY_MAX_BYTES (16u << 20) /* larger inputs are a mistake */
#define REPLAY_SECONDS   20          /* per input, under ASan included */

static int replay_pass, replay_fail;

static void
replay_result(const char *path, bool ok, const char *why)
{
	if (ok)
		replay_pass++;
	else
		replay_fail++;
	printf("%s - %s %s%s%s\n", ok ? "ok" : "not ok", fuzz_name, path,
	    why[0] ? ": " : "", why);
}

/* The whole file in a buffer of exactly its size. */
static int
replay_read(const char *path, uint8_t **bufp, size_t *lenp)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > REPLAY_MAX_BYTES)
		goto out;
	if ((buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)) == NULL)
		goto out;
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	*bufp = buf;
	*lenp = got;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	(void)close(fd); /* read-only */
	return rc;
}

static void
replay_file(const char *path)
{
	uint8_t *buf;
	size_t len;
	char why[64];
	pid_t pid;
	int st;

	if (replay_read(path, &buf, &len) != 0) {
		replay_result(path, false, "cannot read");
		return;
	}
	(void)fflush(stdout);
	if ((pid = fork()) < 0) {
		free(buf);
		replay_result(path, false, "fork failed");
		return;
	}
	if (pid == 0) {
		(void)alarm(REPLAY_SECONDS);
		(void)LLVMFuzzerTestOneInput(buf, len);
		free(buf);
		exit(0); /* exit, not _exit: LeakSanitizer checks here */
	}
	free(buf);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	why[0] = '\0';
	if (WIFSIGNALED(st))
		(void)snprintf(why, sizeof(why), "killed by signal %d%s",
		    WTERMSIG(st),
		    WTERMSIG(st) == SIGALRM ? " (time limit)" : "");
	else if (WEXITSTATUS(st) != 0)
		(void)snprintf(
		    why, sizeof(why), "exit status %d", WEXITSTATUS(st));
	replay_result(path, why[0] == '\0', why);
}

static int
replay_skip(const struct dirent *d)
{
	return d->d_name[0] != '.'; /* README-less folders; no dot files */
}

/* Every file of dir in name order; a missing folder is fine if !must. */
static void
replay_dir(const char *dir, bool must)
{
	struct dirent **ents;
	char path[4096];
	int n, i, r;

	if ((n = scandir(dir, &ents, replay_skip, alphasort)) < 0) {
		if (must || errno != ENOENT)
			replay_result(dir, false, strerror(errno));
		return;
	}
	for (i = 0; i < n; i++) {
		r = snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		if (r > 0 && (size_t)r < sizeof(path))
			replay_file(path);
		else
			replay_result(ents[i]->d_name, false, "path too long");
		free(ents[i]);
	}
	free(ents);
}

static void
replay_arg(const char *arg)
{
	struct stat st;

	if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode))
		replay_dir(arg, true);
	else
		replay_file(arg);
}

int
main(int argc, char **argv)
{
	char dir[4096];
	int i;

	(void)LLVMFuzzerInitialize(&argc, &argv);
	if (argc > 1) {
		for (i = 1; i < argc; i++)
			replay_arg(argv[i]);
	} else {
		(void)snprintf(dir, sizeof(dir), "%s/corpus/%s", FUZZ_DIR,
		    fuzz_name); /* short names: fits */
		replay_dir(dir, true);
		(void)snprintf(dir, sizeof(dir), "%s/regress/%s", FUZZ_DIR,
		    fuzz_name); /* fits */
		replay_dir(dir, false);
	}
	printf("%d passed, %d failed\n", replay_pass, replay_fail);
	return replay_fail != 0;
}
