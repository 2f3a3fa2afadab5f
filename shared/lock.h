/*
 * Robust, process-shared mutexes for shared memory. A lock whose owner died
 * is repaired here: lock_take() sees EOWNERDEAD, runs the lock's repair
 * function, marks the mutex consistent and counts the recovery. Critical
 * sections must stay tiny: no I/O, malloc, logging, libcurl or MHD calls.
 */
#ifndef WP_LOCK_H
#define WP_LOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Called with the lock held after its owner died mid-update. */
typedef void lock_repair_fn(void *arg);

struct lock {
	pthread_mutex_t mtx;
	_Atomic uint64_t recovered; /* owner deaths repaired */
	_Atomic int32_t owner;      /* pid of the holder, for diagnostics */
	uint32_t pad;
};

/* Initialise in shared memory. Returns 0 or WP_ESYS. */
int lock_init(struct lock *l);
/*
 * Take the lock. On EOWNERDEAD calls repair(arg) (if not NULL) before
 * making the mutex consistent. Returns 0, or WP_ELOCK when the mutex is
 * not recoverable (the segment must be rebuilt).
 */
int lock_take(struct lock *l, lock_repair_fn *repair, void *arg);
void lock_give(struct lock *l);

#endif
