/*
 * Unit tests of shared/util.c's random pool: a forked child never hands
 * out its parent's bytes (nor its pid), and util_rand_chars stays in its
 * alphabet and reaches all of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "util.h"

#include "th.h"

TEST(t_random_fork)
{
	unsigned char mine[64], theirs[64], warm[8];
	int fd[2], st;
	pid_t pid;

	util_random(warm, sizeof(warm)); /* the pool is full before fork */
	EXPECT(util_pid() == getpid());  /* and the pid known */
	EXPECT_INT_EQ(pipe(fd), 0);
	if ((pid = fork()) == 0) {
		if (util_pid() != getpid())
			_exit(2);
		util_random(theirs, sizeof(theirs));
		_exit(write(fd[1], theirs, sizeof(theirs)) ==
		            (ssize_t)sizeof(theirs)
		        ? 0
		        : 1);
	}
	EXPECT(pid > 0);
	util_random(mine, sizeof(mine));
	EXPECT(read(fd[0], theirs, sizeof(theirs)) == (ssize_t)sizeof(theirs));
	EXPECT(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	    WEXITSTATUS(st) == 0);
	EXPECT(memcmp(mine, theirs, sizeof(mine)) != 0);
	close(fd[0]);
	close(fd[1]);
}

TEST(t_rand_chars)
{
	static const char abc[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	char out[4097];
	int seen[256] = { 0 };
	size_t i, n = 0;

	util_rand_chars(out, sizeof(out) - 1, abc);
	EXPECT_INT_EQ(strlen(out), sizeof(out) - 1);
	for (i = 0; i < sizeof(out) - 1; i++) {
		EXPECT(strchr(abc, out[i]) != NULL);
		seen[(unsigned char)out[i]]++;
	}
	for (i = 0; i < 256; i++)
		n += seen[i] > 0;
	EXPECT_INT_EQ(n, sizeof(abc) - 1); /* 4096 draws reach all 36 */
	util_rand_chars(out, 0, abc);
	EXPECT_STR_EQ(out, "");
	util_rand_chars(out, 1, "z");
	EXPECT_STR_EQ(out, "z");
}

int
main(void)
{
	if (sodium_init() < 0)
		return 1;
	RUN(t_random_fork);
	RUN(t_rand_chars);
	TH_DONE();
}
