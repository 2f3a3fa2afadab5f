/*
 * Token leases with a journal: every token a request holds is noted in
 * this worker's journal in shared memory (shm_leases), so the master can
 * give the leases back if the worker dies holding them; otherwise a
 * killed worker would leave its tokens counted in flight for good. The
 * free entries are a stack in this process's memory. Worker only.
 */
#include <stdatomic.h>

#include "util.h"
#include "wrk.h"

/* Free journal entries; this worker's own, so plain statics. */
static uint32_t lease_free[SHM_LEASES];
static uint32_t lease_nfree;
static bool lease_ready;

int
wrk_lease_pick(struct wrk *w, enum cfg_pool pool, uint32_t exclude,
    struct tok_lease *l, int64_t *retry_at_ms)
{
	_Atomic uint64_t *j = shm_leases(w->shm, w->pslot);
	uint32_t i;
	int rc;

	if (!lease_ready) {
		for (i = 0; i < SHM_LEASES; i++)
			lease_free[i] = SHM_LEASES - 1 - i;
		lease_nfree = SHM_LEASES;
		lease_ready = true;
	}
	rc =
	    tok_pick(w->shm->tok, pool, util_now_ms(), exclude, l, retry_at_ms);
	if (rc != 0)
		return rc;
	l->journal = SHM_LEASES; /* none: more leases than entries */
	if (lease_nfree > 0) {
		l->journal = lease_free[--lease_nfree];
		atomic_store_explicit(&j[l->journal],
		    ((uint64_t)l->row + 1) << 32 | l->row_gen,
		    memory_order_release);
	}
	return 0;
}

void
wrk_lease_release(struct wrk *w, struct tok_lease *l)
{
	_Atomic uint64_t *j = shm_leases(w->shm, w->pslot);

	/* Journal first: a death in between loses a count, never doubles. */
	if (l->journal < SHM_LEASES) {
		atomic_store_explicit(&j[l->journal], 0, memory_order_release);
		lease_free[lease_nfree++] = l->journal;
		l->journal = SHM_LEASES;
	}
	tok_release(w->shm->tok, l);
}
