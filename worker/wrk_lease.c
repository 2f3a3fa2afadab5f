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
	uint32_t i, jslot;
	int rc;

	if (!lease_ready) {
		for (i = 0; i < SHM_LEASES; i++)
			lease_free[i] = SHM_LEASES - 1 - i;
		lease_nfree = SHM_LEASES;
		lease_ready = true;
	}
	if (lease_nfree == 0) { /* more leases than entries: unjournaled */
		l->journal = SHM_LEASES;
		return tok_pick(
		    w->shm->tok, pool, util_now_ms(), exclude, l, retry_at_ms);
	}
	/* The pick notes the lease in the journal under the table's lock. */
	jslot = lease_free[lease_nfree - 1];
	rc = tok_pick_journaled(w->shm->tok, pool, util_now_ms(), exclude, l,
	    retry_at_ms, &j[jslot]);
	if (rc != 0)
		return rc;
	lease_nfree--;
	l->journal = jslot;
	return 0;
}

void
wrk_lease_release(struct wrk *w, struct tok_lease *l)
{
	_Atomic uint64_t *j = shm_leases(w->shm, w->pslot);

	/*
	 * The count first, then the journal: a death in between makes the
	 * master give the lease back once more (clamped at 0), never leaves
	 * it counted for good.
	 */
	tok_release(w->shm->tok, l);
	if (l->journal < SHM_LEASES) {
		atomic_store_explicit(&j[l->journal], 0, memory_order_release);
		lease_free[lease_nfree++] = l->journal;
		l->journal = SHM_LEASES;
	}
}
