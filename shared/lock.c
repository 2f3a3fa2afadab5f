/*
 * Robust process-shared mutexes (see lock.h). Used by every process that
 * touches the shared segment. Never logs: callers may read l->recovered.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "lock.h"
#include "util.h"

int
lock_init(struct lock *l)
{
	pthread_mutexattr_t attr;
	int rc;

	memset(l, 0, sizeof(*l));
	if ((rc = pthread_mutexattr_init(&attr)) != 0)
		goto fail;
	if ((rc = pthread_mutexattr_setpshared(
	         &attr, PTHREAD_PROCESS_SHARED)) != 0 ||
	    (rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST)) !=
	        0 ||
	    (rc = pthread_mutex_init(&l->mtx, &attr)) != 0) {
		(void)pthread_mutexattr_destroy(&attr); /* rc is the news */
		goto fail;
	}
	(void)pthread_mutexattr_destroy(&attr); /* cannot fail on Linux */
	return 0;
fail:
	errno = rc;
	return WP_ESYS;
}

int
lock_take(struct lock *l, lock_repair_fn *repair, void *arg)
{
	int rc;

	rc = pthread_mutex_lock(&l->mtx);
	if (rc == EOWNERDEAD) {
		if (repair != NULL)
			repair(arg);
		if (pthread_mutex_consistent(&l->mtx) != 0) {
			(void)pthread_mutex_unlock(&l->mtx);
			return WP_ELOCK;
		}
		atomic_fetch_add_explicit(
		    &l->recovered, 1, memory_order_relaxed);
		rc = 0;
	}
	if (rc != 0)
		return WP_ELOCK;
	atomic_store_explicit(
	    &l->owner, (int32_t)util_pid(), memory_order_relaxed);
	return 0;
}

void
lock_give(struct lock *l)
{
	atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
	(void)pthread_mutex_unlock(&l->mtx); /* we hold it: cannot fail */
}
