/*
 * The master's loop: signals (through a signalfd), supervision of the
 * children with respawn backoff, SIGHUP reload by worker rotation, token
 * persistence, and the two ways to stop. Single-threaded; it waits only
 * in poll(2), never on the network.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "mst.h"
#include "util.h"

#define MST_TICK_MS        200
#define MST_SAVE_EVERY_MS  1000
#define MST_QUICK_DEATH_MS 2000
#define MST_BACKOFF_MAX_MS 30000
#define MST_HANDOVER_MS    10000 /* old workers wait this long for new */
#define MST_HEARTBEAT_MS   30000 /* a worker silent this long is stuck */
#define MST_FAST_STOP_MS   5000

struct mst_sigs {
	bool hup, term, quit, usr1, chld;
};

static int
mst_signals_init(struct mst *m)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return WP_ESYS;
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGHUP);
	(void)sigaddset(&set, SIGTERM);
	(void)sigaddset(&set, SIGINT);
	(void)sigaddset(&set, SIGQUIT);
	(void)sigaddset(&set, SIGUSR1);
	(void)sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return WP_ESYS;
	m->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return m->sigfd < 0 ? WP_ESYS : 0;
}

static void
mst_signals_read(struct mst *m, struct mst_sigs *s)
{
	struct signalfd_siginfo si;

	while (read(m->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			s->hup = true;
			break;
		case SIGTERM:
		case SIGINT:
			s->term = true;
			break;
		case SIGQUIT:
			s->quit = true;
			break;
		case SIGUSR1:
			s->usr1 = true;
			break;
		case SIGCHLD:
			s->chld = true;
			break;
		default:
			break;
		}
	}
}

static void
mst_signal_children(struct mst *m, int sig)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(m->ch); i++)
		if (m->ch[i].pid != 0)
			(void)kill(m->ch[i].pid, sig); /* may be gone */
}

static void *
mst_writer_main(void *arg)
{
	struct mst *m = arg;

	m->writer_rc = tokfile_write(m->shm.tok, m->tok_path, &m->tok_base);
	m->writer_errno = errno;
	atomic_store(&m->writer_done, true);
	return NULL;
}

static void
mst_written(struct mst *m, int rc, int err, uint64_t dirty)
{
	if (rc != 0) {
		errno = err;
		log_warn("%s: not written, will retry", m->tok_path);
		return;
	}
	m->tok_saved = dirty;
	log_debug("%s: written", m->tok_path);
}

/* Collect a finished write (or, with wait, the one under way). */
static void
mst_writer_reap(struct mst *m, bool wait)
{
	if (!m->writer_on || (!wait && !atomic_load(&m->writer_done)))
		return;
	(void)pthread_join(m->writer, NULL); /* joinable and ours */
	m->writer_on = false;
	mst_written(m, m->writer_rc, m->writer_errno, m->writer_dirty);
}

/*
 * Token state to disk when it changed, at most once a second, by the
 * writer thread; with force (reload, stop) at once, here, whether or not
 * it changed.
 */
static void
mst_persist(struct mst *m, bool force)
{
	int64_t now = util_mono_ms();
	uint64_t dirty;

	mst_writer_reap(m, force);
	if (m->writer_on)
		return; /* still writing: the next tick looks again */
	dirty = tok_table_dirty(m->shm.tok);
	if (!force &&
	    (dirty == m->tok_saved ||
	        now - m->tok_saved_ms < MST_SAVE_EVERY_MS))
		return;
	m->tok_saved_ms = now;
	if (!force) {
		m->writer_dirty = dirty;
		atomic_store(&m->writer_done, false);
		if (pthread_create(&m->writer, NULL, mst_writer_main, m) == 0) {
			m->writer_on = true;
			return;
		}
	}
	mst_written(m, tokfile_write(m->shm.tok, m->tok_path, &m->tok_base),
	    errno, dirty);
}

/* Give back the tokens a gone worker still held (its lease journal). */
static void
mst_leases_back(struct mst *m, int pslot)
{
	_Atomic uint64_t *j = shm_leases(&m->shm, (uint32_t)pslot);
	struct tok_lease l;
	unsigned n = 0;
	uint64_t v;
	size_t i;

	for (i = 0; i < SHM_LEASES; i++) {
		if ((v = atomic_exchange(&j[i], 0)) == 0)
			continue;
		memset(&l, 0, sizeof(l));
		l.row = (uint32_t)(v >> 32) - 1;
		l.row_gen = (uint32_t)v;
		tok_release(m->shm.tok, &l);
		n++;
	}
	if (n > 0)
		log_notice("gave back %u token leases of a gone worker", n);
}

static void
mst_child_gone(struct mst *m, struct mst_child *c, int status)
{
	struct shm_proc *p = shm_proc(&m->shm, (uint32_t)c->pslot);
	int64_t now = util_mono_ms(), lived = now - c->started_ms;
	struct mst_wslot *w;
	bool expected = c->retiring || m->stopping;
	char what[24];

	(void)mst_child_label(c->role, c->wslot, what, sizeof(what));

	if (WIFSIGNALED(status))
		log_warnx("%s (pid %d) killed by signal %d (%s)%s%s%s", what,
		    (int)c->pid, WTERMSIG(status), strsignal(WTERMSIG(status)),
		    WCOREDUMP(status) ? ", core dumped" : "",
		    p->note[0] ? ": " : "", p->note);
	else if (WEXITSTATUS(status) != 0 || !expected)
		log_warnx("%s (pid %d) exited with status %d%s%s", what,
		    (int)c->pid, WEXITSTATUS(status), p->note[0] ? ": " : "",
		    p->note);
	else
		log_info("%s (pid %d) exited", what, (int)c->pid);
	/* A dead worker's streams are gone: so is its count of them. */
	atomic_store(&p->c.active, 0);
	mst_leases_back(m, c->pslot);
	atomic_store(&p->state, SHM_PS_EXITED);
	atomic_store(&p->pid, 0);
	atomic_store(&p->role, SHM_ROLE_FREE);
	if (!expected && c->gen == m->gen) {
		atomic_fetch_add(&m->shm.hdr->respawns, 1);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
			log_errx("%s: fatal configuration problem, not "
			         "respawned",
			    what);
			if (c->role == SHM_ROLE_WORKER)
				m->ws[c->wslot].respawn_ms = INT64_MAX;
			else
				m->janitor_at_ms = INT64_MAX;
		} else if (c->role == SHM_ROLE_WORKER) {
			w = &m->ws[c->wslot];
			w->quick_dies =
			    lived < MST_QUICK_DEATH_MS ? w->quick_dies + 1 : 0;
			w->respawn_ms = now +
			    (w->quick_dies == 0 ? 0
			                        : (100LL << (w->quick_dies < 9
			                                   ? w->quick_dies
			                                   : 9)));
			if (w->respawn_ms - now > MST_BACKOFF_MAX_MS)
				w->respawn_ms = now + MST_BACKOFF_MAX_MS;
		} else {
			m->janitor_at_ms =
			    now + (lived < MST_QUICK_DEATH_MS ? 1000 : 0);
		}
	}
	memset(c, 0, sizeof(*c));
}

static void
mst_reap(struct mst *m)
{
	struct mst_child *c;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if ((c = mst_child_find(m, pid)) != NULL)
			mst_child_gone(m, c, status);
	}
}

static struct mst_child *
mst_current(struct mst *m, enum shm_role role, int wslot)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(m->ch); i++) {
		struct mst_child *c = &m->ch[i];

		if (c->pid != 0 && c->role == role && c->wslot == wslot &&
		    c->gen == m->gen && !c->retiring)
			return c;
	}
	return NULL;
}

static void
mst_retire(struct mst *m, struct mst_child *c, int64_t now)
{
	c->retiring = true;
	c->kill_at_ms = now + (int64_t)m->cfg.drain_timeout * 1000 + 5000;
	(void)kill(c->pid, SIGQUIT); /* it may have died already */
}

/* Start what is missing, hand over from old workers, enforce deadlines. */
static void
mst_supervise(struct mst *m)
{
	int64_t now = util_mono_ms();
	struct mst_child *c, *cur;
	struct shm_proc *p;
	char what[24];
	unsigned i;

	for (i = 0; i < m->nworkers && !m->stopping; i++)
		if (mst_current(m, SHM_ROLE_WORKER, (int)i) == NULL &&
		    m->ws[i].respawn_ms <= now)
			(void)mst_spawn(m, SHM_ROLE_WORKER, (int)i);
	if (!m->stopping && m->janitor_at_ms <= now &&
	    mst_current(m, SHM_ROLE_JANITOR, -1) == NULL) {
		size_t j;
		bool any = false;

		/* The janitor is not rotated on reload: any one will do. */
		for (j = 0; j < ARRAY_LEN(m->ch); j++)
			any |= m->ch[j].pid != 0 &&
			    m->ch[j].role == SHM_ROLE_JANITOR;
		if (!any)
			(void)mst_spawn(m, SHM_ROLE_JANITOR, -1);
	}
	for (c = m->ch; c < m->ch + ARRAY_LEN(m->ch); c++) {
		if (c->pid == 0)
			continue;
		p = shm_proc(&m->shm, (uint32_t)c->pslot);
		if (c->role == SHM_ROLE_WORKER && !c->retiring &&
		    c->gen != m->gen && !m->stopping) {
			/*
			 * An old worker drains once its slot's new worker is
			 * ready (or slow to say so); while no new one runs it
			 * keeps serving, so a reload never loses capacity.
			 */
			cur = (unsigned)c->wslot < m->nworkers
			    ? mst_current(m, SHM_ROLE_WORKER, c->wslot)
			    : NULL;
			if ((unsigned)c->wslot >= m->nworkers ||
			    (cur != NULL &&
			        (atomic_load(
			             &shm_proc(&m->shm, (uint32_t)cur->pslot)
			                  ->state) == SHM_PS_READY ||
			            now - cur->started_ms > MST_HANDOVER_MS)))
				mst_retire(m, c, now);
		}
		if (c->kill_at_ms != 0 && now >= c->kill_at_ms) {
			log_warnx("%s (pid %d) did not stop in time: killed",
			    mst_child_label(
			        c->role, c->wslot, what, sizeof(what)),
			    (int)c->pid);
			(void)kill(c->pid, SIGKILL);
			c->kill_at_ms = now + 1000;
		}
		if (!c->retiring && !m->stopping &&
		    atomic_load(&p->state) == SHM_PS_READY &&
		    now - atomic_load(&p->heartbeat_ms) > MST_HEARTBEAT_MS) {
			log_errx("%s (pid %d) stuck for %d s: killed",
			    mst_child_label(
			        c->role, c->wslot, what, sizeof(what)),
			    (int)c->pid, MST_HEARTBEAT_MS / 1000);
			(void)kill(c->pid, SIGKILL);
			atomic_store(&p->heartbeat_ms, now);
		}
	}
}

static void
mst_reload_tokens(struct mst *m)
{
	struct tokfile *edited = NULL;
	unsigned added = 0, removed = 0, changed = 0;
	char err[CFG_ERR_MAX];

	mst_writer_reap(m, true); /* the merge needs tok_base */
	if (tokfile_read(m->tok_path, &edited, err, sizeof(err)) != 0) {
		log_errx("reload: %s; keeping the live tokens", err);
		return;
	}
	if (tokfile_merge(m->shm.tok, m->tok_base, edited, &added, &removed,
	        &changed) != 0) {
		log_errx("reload: %s: merge failed; keeping the live tokens",
		    m->tok_path);
		tokfile_free(edited);
		return;
	}
	tokfile_free(m->tok_base);
	m->tok_base = edited;
	log_notice("reload: %s: %u added, %u removed, %u changed", m->tok_path,
	    added, removed, changed);
	mst_persist(m, true);
}

static void
mst_reload(struct mst *m)
{
	char err[CFG_ERR_MAX], names[CFG_ERR_MAX];
	struct cfg *nc;
	unsigned n;

	mst_notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
	    (unsigned long long)(util_mono_ns() / 1000));
	if ((nc = malloc(sizeof(*nc))) == NULL) {
		log_errx("reload: out of memory; keeping the running config");
		goto done;
	}
	if (cfg_load(m->opts.config, nc, err, sizeof(err)) != 0) {
		log_errx("reload: %s; keeping the running config", err);
		goto done;
	}
	mst_apply_opts(&m->opts, nc);
	/* Keys only a restart can apply keep their running values. */
	if (cfg_restart_diff(&m->cfg, nc, names, sizeof(names)) > 0)
		log_warnx("reload: %s changed: needs a restart; keeping the "
		          "running value",
		    names);
	memcpy(nc->listen, m->cfg.listen, sizeof(nc->listen));
	memcpy(nc->data_dir, m->cfg.data_dir, sizeof(nc->data_dir));
	nc->max_tokens = m->cfg.max_tokens;
	if (mst_check_cfg(nc, err, sizeof(err)) != 0) {
		log_errx("reload: %s: %s; keeping the running config",
		    m->opts.config, err);
		goto done;
	}
	mst_reload_tokens(m);
	atomic_fetch_add(&m->shm.hdr->reloads, 1);
	if (memcmp(nc, &m->cfg, sizeof(*nc)) == 0) {
		log_notice("reload: config unchanged");
		goto done;
	}
	memcpy(&m->cfg, nc, sizeof(*nc));
	m->gen++;
	shm_cfg_publish(&m->shm, &m->cfg, m->gen);
	log_setlevel((enum log_level)m->cfg.log_level);
	if (log_open(m->cfg.log_file) != 0)
		log_warn("reload: %s", m->cfg.log_file);
	n = mst_nworkers(&m->cfg);
	if (n > m->nworkers && mst_listen_open(m, n, err, sizeof(err)) != 0) {
		log_errx("reload: %s; keeping %u workers", err, m->nworkers);
		n = m->nworkers;
	}
	if (n < m->nworkers)
		mst_listen_close_from(m, n);
	m->nworkers = n;
	for (n = 0; n < MST_WSLOTS; n++) {
		m->ws[n].respawn_ms = 0;
		m->ws[n].quick_dies = 0;
	}
	shm_wake_janitor(&m->shm); /* a limit may have come down */
	log_notice("reload: generation %llu, %u workers",
	    (unsigned long long)m->gen, m->nworkers);
done:
	free(nc);
	mst_notify("READY=1\nSTATUS=serving");
}

static bool
mst_children_left(const struct mst *m)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(m->ch); i++)
		if (m->ch[i].pid != 0)
			return true;
	return false;
}

static void
mst_stop(struct mst *m, bool graceful)
{
	int64_t now = util_mono_ms(), until;
	size_t i;

	until = now +
	    (graceful ? (int64_t)m->cfg.drain_timeout * 1000 + 5000
	              : MST_FAST_STOP_MS);
	/* Once stopping, only a fast stop may still cut a graceful one. */
	if (m->stopping && (graceful || m->stop_fast))
		return;
	m->stop_fast = !graceful;
	log_notice("%s stop", graceful ? "graceful" : "fast");
	mst_notify("STOPPING=1\nSTATUS=stopping");
	m->stopping = true;
	mst_signal_children(m, graceful ? SIGQUIT : SIGTERM);
	for (i = 0; i < ARRAY_LEN(m->ch); i++)
		if (m->ch[i].pid != 0 &&
		    (m->ch[i].kill_at_ms == 0 || m->ch[i].kill_at_ms > until))
			m->ch[i].kill_at_ms = until;
}

int
mst_run(struct mst *m)
{
	struct mst_sigs s;
	struct pollfd pfd;
	bool all_fatal;
	unsigned i;

	if (mst_signals_init(m) != 0)
		fatal("signals");
	m->gen = 1;
	shm_cfg_publish(&m->shm, &m->cfg, m->gen);
	mst_title_set("webproxyd: master");
	mst_supervise(m);
	log_notice("webproxyd started: %u workers on %s, %u tokens, data in %s",
	    m->nworkers, m->cfg.listen, tok_table_count(m->shm.tok),
	    m->cfg.data_dir);
	mst_notify("READY=1\nSTATUS=serving\nMAINPID=%d", (int)getpid());
	for (;;) {
		pfd.fd = m->sigfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, MST_TICK_MS) < 0 && errno != EINTR)
			fatal("poll");
		memset(&s, 0, sizeof(s));
		mst_signals_read(m, &s);
		mst_reap(m);
		if (s.usr1) {
			if (log_reopen() != 0)
				log_warn("reopen log");
			mst_signal_children(m, SIGUSR1);
		}
		if (s.term)
			mst_stop(m, false);
		else if (s.quit)
			mst_stop(m, true);
		else if (s.hup && !m->stopping)
			mst_reload(m);
		mst_supervise(m);
		mst_persist(m, false);
		if (m->stopping && !mst_children_left(m))
			break;
		for (all_fatal = m->nworkers > 0, i = 0; i < m->nworkers; i++)
			all_fatal &= m->ws[i].respawn_ms == INT64_MAX;
		if (all_fatal && !m->stopping) {
			log_errx("no worker can run: stopping");
			mst_stop(m, false);
		}
	}
	mst_persist(m, true);
	if (unlink(m->pid_path) != 0 && errno != ENOENT)
		log_warn("%s", m->pid_path);
	log_notice("webproxyd stopped");
	tokfile_free(m->tok_base);
	m->tok_base = NULL;
	mst_listen_close_from(m, 0);
	close_fd(&m->sigfd);
	shm_destroy(&m->shm);
	return 0;
}
