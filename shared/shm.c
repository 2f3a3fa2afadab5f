/*
 * The shared segment (see shm.h): created and laid out by the master
 * before it forks; every child inherits the mapping. The master is the
 * only writer of the header and the config slots.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "shm.h"
#include "util.h"

const char *const shm_role_name[] = {
	[SHM_ROLE_FREE] = "free",
	[SHM_ROLE_WORKER] = "worker",
	[SHM_ROLE_JANITOR] = "janitor",
};

const char *const shm_pstate_name[] = {
	[SHM_PS_STARTING] = "starting",
	[SHM_PS_READY] = "ready",
	[SHM_PS_DRAINING] = "draining",
	[SHM_PS_EXITED] = "exited",
};

#define SHM_ALIGN(x) (((x) + 63u) & ~(size_t)63u)

static void
shm_layout(uint32_t tok_cap, size_t *cfg_off, size_t *proc_off, size_t *tok_off,
    size_t *lease_off, size_t *total)
{
	size_t off = SHM_ALIGN(sizeof(struct shm_hdr));

	*cfg_off = off;
	off = SHM_ALIGN(off + 2 * sizeof(struct shm_cfg_slot));
	*proc_off = off;
	off = SHM_ALIGN(off + SHM_PROCS * sizeof(struct shm_proc));
	*tok_off = off;
	off = SHM_ALIGN(off + tok_table_size(tok_cap));
	/* Pages of journals no worker touches are never made resident. */
	*lease_off = off;
	off = SHM_ALIGN(off + (size_t)SHM_PROCS * SHM_LEASES * 8u);
	*total = off;
}

_Atomic uint64_t *
shm_leases(const struct shm *s, uint32_t pslot)
{
	WP_ASSERT(pslot < SHM_PROCS);
	return (_Atomic uint64_t *)((char *)s->hdr + s->hdr->lease_off) +
	    (size_t)pslot * SHM_LEASES;
}

int
shm_create(struct shm *s, uint32_t tok_cap)
{
	size_t cfg_off, proc_off, tok_off, lease_off, total;
	struct shm_hdr *h;
	char name[64];
	void *p = MAP_FAILED;
	int fd = -1, rc;

	memset(s, 0, sizeof(*s));
	s->wake_fd = -1;
	shm_layout(tok_cap, &cfg_off, &proc_off, &tok_off, &lease_off, &total);
	(void)snprintf(name, sizeof(name), "/webproxyd.%d", (int)getpid());
	(void)shm_unlink(name); /* a leftover of a dead namesake */
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return WP_ESYS;
	/* Gone from /dev/shm at once: children inherit the mapping. */
	(void)shm_unlink(name);
	if (ftruncate(fd, (off_t)total) != 0) {
		rc = WP_ESYS;
		goto out;
	}
	p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		rc = WP_ESYS;
		goto out;
	}
	h = p;
	h->magic = SHM_MAGIC;
	h->abi = SHM_ABI_VERSION;
	h->hdr_size = sizeof(*h);
	h->seg_size = total;
	h->master_pid = (int32_t)getpid();
	h->nprocs = SHM_PROCS;
	h->started_ms = (uint64_t)util_now_ms();
	h->cfg_off[0] = cfg_off;
	h->cfg_off[1] = cfg_off + sizeof(struct shm_cfg_slot);
	h->proc_off = proc_off;
	h->tok_off = tok_off;
	h->lease_off = lease_off;
	h->tok_size = tok_table_size(tok_cap);
	s->hdr = h;
	s->size = total;
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->wake_fd < 0) {
		rc = WP_ESYS;
		goto out;
	}
	if ((rc = lock_init(&h->admin.lock)) != 0)
		goto out;
	if ((rc = tok_table_init((char *)p + tok_off, tok_cap, &s->tok)) != 0)
		goto out;
	p = MAP_FAILED; /* s owns it now */
	rc = 0;
out:
	if (rc != 0 && s->hdr != NULL) {
		(void)munmap(s->hdr, total);
		close_fd(&s->wake_fd);
		memset(s, 0, sizeof(*s));
		s->wake_fd = -1;
	}
	close_fd(&fd);
	return rc;
}

void
shm_destroy(struct shm *s)
{
	if (s->hdr != NULL)
		(void)munmap(s->hdr, s->size); /* at exit: nothing to do */
	close_fd(&s->wake_fd);
	memset(s, 0, sizeof(*s));
	s->wake_fd = -1;
}

void
shm_wake_janitor(const struct shm *s)
{
	uint64_t one = 1;

	/* A full counter still wakes it: nothing to do on failure. */
	if (s->wake_fd >= 0 && write(s->wake_fd, &one, sizeof(one)) < 0)
		return;
}

int
shm_check(const struct shm *s)
{
	const struct shm_hdr *h = s->hdr;

	if (h == NULL || h->magic != SHM_MAGIC || h->abi != SHM_ABI_VERSION ||
	    h->hdr_size != sizeof(*h) || h->seg_size != s->size)
		return WP_EVERSION;
	return 0;
}

static struct shm_cfg_slot *
shm_cfg_slot(const struct shm *s, uint32_t i)
{
	return (struct shm_cfg_slot *)((char *)s->hdr + s->hdr->cfg_off[i]);
}

void
shm_cfg_publish(struct shm *s, const struct cfg *cfg, uint64_t gen)
{
	uint32_t cur, next;
	struct shm_cfg_slot *slot;

	cur = atomic_load_explicit(&s->hdr->cfg_slot, memory_order_relaxed);
	next = cur ^ 1u;
	slot = shm_cfg_slot(s, next);
	slot->gen = gen;
	memcpy(&slot->cfg, cfg, sizeof(*cfg));
	atomic_store_explicit(&s->hdr->cfg_slot, next, memory_order_release);
	atomic_store_explicit(&s->hdr->cfg_gen, gen, memory_order_release);
}

uint64_t
shm_cfg_read(const struct shm *s, struct cfg *out)
{
	uint64_t gen, again;
	uint32_t i;

	/*
	 * A reader racing two publishes in a row could see a slot being
	 * rewritten: retry until the generation holds still around the copy.
	 */
	do {
		gen = atomic_load_explicit(
		    &s->hdr->cfg_gen, memory_order_acquire);
		i = atomic_load_explicit(
		    &s->hdr->cfg_slot, memory_order_acquire);
		memcpy(out, &shm_cfg_slot(s, i)->cfg, sizeof(*out));
		atomic_thread_fence(memory_order_acquire);
		again = atomic_load_explicit(
		    &s->hdr->cfg_gen, memory_order_relaxed);
	} while (gen != again);
	return gen;
}

struct shm_proc *
shm_proc(const struct shm *s, uint32_t i)
{
	WP_ASSERT(i < SHM_PROCS);
	return (struct shm_proc *)((char *)s->hdr + s->hdr->proc_off) + i;
}

/* Keep a reused slot's counts, so totals never go backwards. */
static void
shm_retire(struct shm *s, struct shm_proc *p)
{
	struct shm_counters *r = &s->hdr->retired;
	unsigned i;

#define SHM_MOVE(f)                                                            \
	atomic_fetch_add_explicit(&r->f,                                       \
	    atomic_load_explicit(&p->c.f, memory_order_relaxed),               \
	    memory_order_relaxed)
	SHM_MOVE(requests);
	SHM_MOVE(errors_4xx);
	SHM_MOVE(errors_5xx);
	SHM_MOVE(chat);
	SHM_MOVE(upstream_errors);
	for (i = 0; i < SHM_STATUS_N; i++)
		SHM_MOVE(by_status[i]);
#undef SHM_MOVE
}

int
shm_proc_alloc(struct shm *s)
{
	struct shm_proc *p;
	uint32_t i;

	for (i = 0; i < SHM_PROCS; i++) {
		p = shm_proc(s, i);
		if (atomic_load(&p->pid) == 0 &&
		    atomic_load(&p->role) == SHM_ROLE_FREE) {
			shm_retire(s, p);
			memset(&p->c, 0, sizeof(p->c));
			p->note[0] = '\0';
			return (int)i;
		}
	}
	return -1;
}

void
shm_totals(const struct shm *s, struct shm_totals *sum)
{
	const struct shm_proc *p;
	uint32_t i;
	unsigned k;

	memset(sum, 0, sizeof(*sum));
	for (i = 0; i <= SHM_PROCS; i++) {
		/* The retired counts are summed as one more slot. */
		const struct shm_counters *c =
		    i < SHM_PROCS ? &shm_proc(s, i)->c : &s->hdr->retired;

#define SHM_ADD(f) sum->f += atomic_load_explicit(&c->f, memory_order_relaxed)
		SHM_ADD(requests);
		SHM_ADD(errors_4xx);
		SHM_ADD(errors_5xx);
		SHM_ADD(chat);
		SHM_ADD(upstream_errors);
		SHM_ADD(active);
		for (k = 0; k < SHM_STATUS_N; k++)
			SHM_ADD(by_status[k]);
#undef SHM_ADD
		if (i == SHM_PROCS)
			break;
		p = shm_proc(s, i);
		if (atomic_load(&p->pid) != 0 &&
		    atomic_load(&p->role) == SHM_ROLE_WORKER)
			sum->workers++;
	}
}
