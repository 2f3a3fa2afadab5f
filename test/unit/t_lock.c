/*
 * Unit tests of the robust shared locks (shared/lock.c) and of the token
 * table's repair after a process died holding its lock: cleanly, half-way
 * through an update, and killed at random while hammering the table.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "lock.h"
#include "tok.h"
#include "util.h"

#include "th.h"

#define T0 1700000000000LL

static void *
shm_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return p;
}

static struct tok_table *
table_new(uint32_t cap, size_t *sizep, void **memp)
{
	struct tok_table *t = NULL;

	*sizep = tok_table_size(cap);
	*memp = shm_alloc(*sizep);
	if (tok_table_init(*memp, cap, &t) != 0) {
		fprintf(stderr, "tok_table_init failed\n");
		exit(2);
	}
	return t;
}

static void
add(struct tok_table *t, const char *token, enum tok_type type, int32_t rem)
{
	struct tok_info ti;
	uint32_t row;

	memset(&ti, 0, sizeof(ti));
	(void)util_strlcpy(ti.token, token, sizeof(ti.token)); /* short */
	ti.type = (uint8_t)type;
	ti.status = TOK_ST_ACTIVE;
	ti.remaining = rem;
	ti.heavy_remaining = -1;
	if (tok_add(t, &ti, &row) != 0)
		printf("  add %s failed\n", token);
}

static uint64_t
recovered(struct lock *l)
{
	return atomic_load(&l->recovered);
}

/* Run fn in a child and wait for it. Returns its exit status or -1. */
static int
in_child(void (*fn)(void *), void *arg)
{
	pid_t pid;
	int st;

	fflush(stdout);
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static int repairs;

static void
count_repair(void *arg)
{
	(void)arg;
	repairs++;
}

static void
child_take_and_die(void *arg)
{
	if (lock_take(arg, NULL, NULL) != 0)
		_exit(3);
	_exit(0); /* holding it */
}

TEST(t_plain_lock)
{
	struct lock *l = shm_alloc(sizeof(*l));

	EXPECT_INT_EQ(lock_init(l), 0);
	EXPECT_INT_EQ(lock_take(l, count_repair, NULL), 0);
	lock_give(l);
	EXPECT_INT_EQ(repairs, 0);
	EXPECT_INT_EQ(in_child(child_take_and_die, l), 0);
	EXPECT_INT_EQ(lock_take(l, count_repair, NULL), 0);
	EXPECT_INT_EQ(repairs, 1);
	EXPECT_INT_EQ(recovered(l), 1);
	EXPECT_INT_EQ(atomic_load(&l->owner), getpid());
	lock_give(l);
	/* Consistent again: no second repair. */
	EXPECT_INT_EQ(lock_take(l, count_repair, NULL), 0);
	lock_give(l);
	EXPECT_INT_EQ(repairs, 1);
	EXPECT_INT_EQ(recovered(l), 1);
	(void)munmap(l, sizeof(*l)); /* teardown */
}

TEST(t_table_owner_died)
{
	struct tok_lease lease;
	struct tok_table *t;
	int64_t retry;
	size_t size;
	void *mem;

	t = table_new(16, &size, &mem);
	add(t, "A", TOK_NORMAL, 5);
	add(t, "B", TOK_NORMAL, 9);
	EXPECT_INT_EQ(in_child(child_take_and_die, tok_table_lock(t)), 0);
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, T0, UINT32_MAX, &lease, &retry), 0);
	EXPECT_STR_EQ(lease.token, "B");
	EXPECT_INT_EQ(recovered(tok_table_lock(t)), 1);
	add(t, "C", TOK_SUPER, -1);
	EXPECT_INT_EQ(tok_table_count(t), 3);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	(void)munmap(mem, size);
}

static void
child_wreck_and_die(void *arg)
{
	struct tok_table *t = arg;

	if (lock_take(tok_table_lock(t), NULL, NULL) != 0)
		_exit(3);
	tok_table_wreck(t);
	_exit(0); /* holding the lock, mid-update */
}

TEST(t_table_died_mid_update)
{
	struct tok_lease lease;
	struct tok_table *t;
	char name[16];
	int64_t retry;
	uint32_t row, gen;
	size_t size;
	void *mem;
	int i;

	t = table_new(64, &size, &mem);
	for (i = 0; i < 20; i++) {
		(void)snprintf(name, sizeof(name), "tok-%d", i);
		add(t, name, i % 4 == 0 ? TOK_SUPER : TOK_NORMAL, i + 1);
	}
	(void)tok_remove(t, "tok-3");
	EXPECT_INT_EQ(in_child(child_wreck_and_die, t), 0);
	/* The next user of the lock repairs it. */
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, T0, UINT32_MAX, &lease, &retry), 0);
	EXPECT_STR_EQ(lease.token, "tok-19"); /* the best normal token */
	EXPECT_INT_EQ(recovered(tok_table_lock(t)), 1);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	EXPECT_INT_EQ(tok_table_count(t), 19);
	EXPECT_INT_EQ(tok_table_count_type(t, TOK_SUPER), 5);
	for (i = 0; i < 20; i++) {
		(void)snprintf(name, sizeof(name), "tok-%d", i);
		EXPECT_INT_EQ(
		    tok_find(t, name, &row, &gen), i == 3 ? WP_ENOENT : 0);
	}
	add(t, "tok-3", TOK_NORMAL, -1); /* reuses the free row */
	EXPECT_INT_EQ(tok_table_count(t), 20);
	EXPECT_INT_EQ(
	    tok_pick(t, CFG_POOL_NORMAL, T0 + 1, UINT32_MAX, &lease, &retry),
	    0);
	EXPECT_STR_EQ(lease.token, "tok-3"); /* unknown quota first */
	EXPECT_INT_EQ(tok_table_check(t), 0);
	(void)munmap(mem, size);
}

/* Mutate the table as fast as possible until killed. */
static void
child_hammer(void *arg)
{
	struct tok_table *t = arg;
	struct tok_lease lease;
	struct tok_info ti;
	int64_t now = T0, retry;
	uint32_t row;
	unsigned i = (unsigned)getpid();

	for (;; i++) {
		now++;
		memset(&ti, 0, sizeof(ti));
		(void)snprintf(ti.token, sizeof(ti.token), "h-%u", i % 200);
		ti.type = (uint8_t)(i % 3 == 0 ? TOK_SUPER : TOK_NORMAL);
		ti.remaining = (int32_t)(i % 9) - 1;
		ti.heavy_remaining = -1;
		if (i % 2 == 0)
			(void)tok_add(t, &ti, &row);
		else
			(void)tok_remove(t, ti.token);
		if (tok_pick(t, CFG_POOL_NORMAL, now, UINT32_MAX, &lease,
		        &retry) == 0) {
			(void)tok_charge(t, &lease, 1, now);
			tok_release(t, &lease);
		}
	}
}

TEST(t_table_killed_at_random)
{
	struct tok_table *t;
	struct timespec ts;
	size_t size;
	void *mem;
	pid_t pid;
	int i, st, bad = 0;

	t = table_new(256, &size, &mem);
	srandom(7);
	for (i = 0; i < 40; i++) {
		fflush(stdout);
		if ((pid = fork()) == 0) {
			child_hammer(t);
			_exit(0);
		}
		ts.tv_sec = 0;
		ts.tv_nsec = 200000 + random() % 3000000;
		(void)nanosleep(&ts, NULL);
		(void)kill(pid, SIGKILL);
		(void)waitpid(pid, &st, 0);
		if (tok_table_check(t) != 0)
			bad++;
	}
	EXPECT_INT_EQ(bad, 0);
	printf("  40 kills, %llu while holding the table lock\n",
	    (unsigned long long)recovered(tok_table_lock(t)));
	add(t, "after", TOK_NORMAL, -1);
	EXPECT_INT_EQ(tok_table_check(t), 0);
	(void)munmap(mem, size);
}

int
main(void)
{
	RUN(t_plain_lock);
	RUN(t_table_owner_died);
	RUN(t_table_died_mid_update);
	RUN(t_table_killed_at_random);
	TH_DONE();
}
