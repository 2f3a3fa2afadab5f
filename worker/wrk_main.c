/*
 * The worker's life (see wrk.h): start MHD and the curl multi handles,
 * loop on epoll until told to stop, drain gracefully on SIGQUIT. Runs
 * only in worker processes. Globals: none; the one struct wrk is static
 * in wrk_main so callbacks can reach it through their arguments.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "util.h"
#include "wrk.h"

int
wrk_ev_add(struct wrk *w, struct wrk_ev *ev, uint32_t events)
{
	struct epoll_event e;

	memset(&e, 0, sizeof(e));
	e.events = events;
	e.data.ptr = ev;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, ev->fd, &e) != 0)
		return WP_ESYS;
	ev->added = true;
	return 0;
}

int
wrk_ev_mod(struct wrk *w, struct wrk_ev *ev, uint32_t events)
{
	struct epoll_event e;

	if (!ev->added)
		return wrk_ev_add(w, ev, events);
	memset(&e, 0, sizeof(e));
	e.events = events;
	e.data.ptr = ev;
	return epoll_ctl(w->epfd, EPOLL_CTL_MOD, ev->fd, &e) == 0 ? 0 : WP_ESYS;
}

void
wrk_ev_del(struct wrk *w, struct wrk_ev *ev)
{
	if (ev->added)
		(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, ev->fd, NULL);
	ev->added = false; /* a closed fd has left the set already */
}

static void
wrk_on_signals(struct wrk *w, struct wrk_ev *ev, uint32_t events)
{
	struct signalfd_siginfo si;

	(void)ev;
	(void)events;
	while (read(w->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			w->stop = true;
			break;
		case SIGQUIT:
			if (!w->draining) {
				w->draining = true;
				w->drain_until_ms = util_mono_ms() +
				    (int64_t)w->cfg->drain_timeout * 1000;
				atomic_store(&w->me->state, SHM_PS_DRAINING);
				wrk_http_drain(w);
				log_info("draining %u connections",
				    wrk_http_connections(w));
			}
			break;
		case SIGUSR1:
			if (log_reopen() != 0)
				log_warn("reopen log");
			break;
		default:
			break; /* SIGHUP is the master's */
		}
	}
}

static void
wrk_on_tick(struct wrk *w, struct wrk_ev *ev, uint32_t events)
{
	uint64_t ticks;

	(void)events;
	/* Only the wake-up matters, not how many were missed. */
	if (read(ev->fd, &ticks, sizeof(ticks)) < 0)
		ticks = 0;
	wrk_chat_tick(w);
	wrk_proxy_refresh(w, false);
	wrk_http_tick(w);
	if (w->draining)
		wrk_http_drain_idle(w);
}

static int
wrk_loop_timeout(struct wrk *w)
{
	int64_t now = util_mono_ms();
	int timeout = 1000;

	if (w->next_due_ms != 0 && w->next_due_ms - now < timeout)
		timeout =
		    w->next_due_ms <= now ? 0 : (int)(w->next_due_ms - now);
	timeout = wrk_up_timeout_ms(w, now, timeout);
	return wrk_http_timeout_ms(w, now, timeout);
}

static int
wrk_loop(struct wrk *w)
{
	struct epoll_event evs[256];
	struct wrk_ev *ev;
	int i, n;

	while (!w->stop) {
		n = epoll_wait(
		    w->epfd, evs, (int)ARRAY_LEN(evs), wrk_loop_timeout(w));
		if (n < 0 && errno != EINTR) {
			log_err("epoll_wait");
			return 1;
		}
		for (i = 0; i < n; i++) {
			ev = evs[i].data.ptr;
			if (ev->fn != NULL)
				ev->fn(w, ev, evs[i].events);
		}
		/* Events freed during the batch could still have been in it. */
		while ((ev = w->dead) != NULL) {
			w->dead = ev->next_dead;
			free(ev);
		}
		if (w->next_due_ms != 0 && w->next_due_ms <= util_mono_ms())
			wrk_chat_run_due(w);
		wrk_up_run_due(w);
		atomic_store_explicit(
		    &w->me->heartbeat_ms, util_mono_ms(), memory_order_relaxed);
		wrk_http_run(w);
		/* Transfers the requests just read added: start them now. */
		wrk_up_run_due(w);
		if (w->draining &&
		    (wrk_http_connections(w) == 0 ||
		        util_mono_ms() >= w->drain_until_ms))
			break;
	}
	return 0;
}

static int
wrk_setup(struct wrk *w)
{
	struct itimerspec its;

	if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return WP_ESYS;
	w->ev_sig.fd = w->sigfd;
	w->ev_sig.fn = wrk_on_signals;
	w->ev_tick.fn = wrk_on_tick;
	w->ev_tick.fd =
	    timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->ev_tick.fd < 0)
		return WP_ESYS;
	memset(&its, 0, sizeof(its));
	its.it_interval.tv_sec = its.it_value.tv_sec = 1;
	if (timerfd_settime(w->ev_tick.fd, 0, &its, NULL) != 0 ||
	    wrk_ev_add(w, &w->ev_sig, EPOLLIN) != 0 ||
	    wrk_ev_add(w, &w->ev_tick, EPOLLIN) != 0)
		return WP_ESYS;
	if (wrk_up_init(w) != 0)
		return WP_ESYS;
	if (wrk_http_start(w) != 0) {
		(void)snprintf(w->me->note, sizeof(w->me->note),
		    "cannot start the HTTP server");
		return WP_ESYS;
	}
	return 0;
}

int
wrk_main(struct shm *shm, const struct cfg *cfg, int pslot, int lfd, int sigfd)
{
	static struct wrk w; /* one per process, reachable from callbacks */
	int rc = 1;

	memset(&w, 0, sizeof(w));
	w.magic = WRK_MAGIC;
	w.shm = shm;
	w.cfg = cfg;
	w.me = shm_proc(shm, (uint32_t)pslot);
	w.pslot = (uint32_t)pslot;
	w.lfd = lfd;
	w.sigfd = sigfd;
	w.epfd = w.ev_tick.fd = -1;
	log_setlevel((enum log_level)cfg->log_level);
	/*
	 * Grow the heap 4 MiB at a time, not 128 KiB: each brk takes the
	 * mmap_lock for writing, and waits while anything reads our page
	 * tables (/proc/PID/smaps of a monitoring agent: 20-30 ms at 5,000
	 * streams); page faults then queue behind it. 2,900 brk calls for
	 * 10,000 streams become 100. Untouched pad pages are not resident.
	 */
	(void)mallopt(M_TOP_PAD, 4 << 20); /* a hint: failure changes nothing */
	if (wrk_setup(&w) != 0) {
		log_err("worker setup");
		goto out;
	}
	atomic_store(&w.me->state, SHM_PS_READY);
	log_debug("ready");
	rc = wrk_loop(&w);
out:
	atomic_store(&w.me->state, SHM_PS_EXITED);
	wrk_http_stop(&w); /* completes (and frees) every request first */
	wrk_up_fini(&w);
	close_fd(&w.ev_tick.fd);
	close_fd(&w.epfd);
	return rc;
}
