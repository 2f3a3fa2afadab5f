/*
 * The worker's life (see wrk.h): start MHD, loop on epoll until told to
 * stop, drain gracefully on SIGQUIT. Runs only in worker processes.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <microhttpd.h>

#include "err.h"
#include "log.h"
#include "util.h"
#include "wrk.h"

#define WRK_EV_MHD   1
#define WRK_EV_SIG   2
#define WRK_EV_TIMER 3

static int
wrk_ep_add(struct wrk *w, int fd, uint64_t tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = tag;
	return epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : WP_ESYS;
}

static void
wrk_on_signals(struct wrk *w)
{
	struct signalfd_siginfo si;

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

static int
wrk_loop(struct wrk *w)
{
	struct epoll_event evs[64];
	MHD_UNSIGNED_LONG_LONG mhd_to;
	uint64_t ticks;
	int i, n, timeout;

	while (!w->stop) {
		timeout = 1000;
		if (MHD_get_timeout(w->mhd, &mhd_to) == MHD_YES &&
		    mhd_to < (MHD_UNSIGNED_LONG_LONG)timeout)
			timeout = (int)mhd_to;
		n = epoll_wait(w->epfd, evs, (int)ARRAY_LEN(evs), timeout);
		if (n < 0 && errno != EINTR) {
			log_err("epoll_wait");
			return 1;
		}
		for (i = 0; i < n; i++) {
			switch (evs[i].data.u64) {
			case WRK_EV_SIG:
				wrk_on_signals(w);
				break;
			case WRK_EV_TIMER:
				/* Only the wake-up matters, not the count. */
				if (read(w->tfd, &ticks, sizeof(ticks)) < 0)
					ticks = 0;
				break;
			default:
				break;
			}
		}
		atomic_store_explicit(
		    &w->me->heartbeat_ms, util_mono_ms(), memory_order_relaxed);
		(void)MHD_run(w->mhd); /* errors are per connection */
		if (w->draining &&
		    (wrk_http_connections(w) == 0 ||
		        util_mono_ms() >= w->drain_until_ms))
			break;
	}
	return 0;
}

int
wrk_main(struct shm *shm, const struct cfg *cfg, int pslot, int lfd, int sigfd)
{
	static struct wrk w; /* one per process, reachable from callbacks */
	struct itimerspec its;
	int rc = 1;

	memset(&w, 0, sizeof(w));
	w.magic = WRK_MAGIC;
	w.shm = shm;
	w.cfg = cfg;
	w.me = shm_proc(shm, (uint32_t)pslot);
	w.lfd = lfd;
	w.sigfd = sigfd;
	w.epfd = w.tfd = -1;
	log_setlevel((enum log_level)cfg->log_level);
	if ((w.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (w.tfd = timerfd_create(
	         CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
		log_err("worker setup");
		goto out;
	}
	memset(&its, 0, sizeof(its));
	its.it_interval.tv_sec = its.it_value.tv_sec = 1;
	if (timerfd_settime(w.tfd, 0, &its, NULL) != 0 ||
	    wrk_ep_add(&w, w.sigfd, WRK_EV_SIG) != 0 ||
	    wrk_ep_add(&w, w.tfd, WRK_EV_TIMER) != 0) {
		log_err("worker setup");
		goto out;
	}
	if (wrk_http_start(&w) != 0) {
		(void)snprintf(w.me->note, sizeof(w.me->note),
		    "cannot start the HTTP server");
		goto out;
	}
	if (wrk_ep_add(&w,
	        MHD_get_daemon_info(w.mhd, MHD_DAEMON_INFO_EPOLL_FD)->epoll_fd,
	        WRK_EV_MHD) != 0) {
		log_err("worker setup");
		goto out;
	}
	atomic_store(&w.me->state, SHM_PS_READY);
	log_debug("ready");
	rc = wrk_loop(&w);
out:
	atomic_store(&w.me->state, SHM_PS_EXITED);
	wrk_http_stop(&w);
	close_fd(&w.tfd);
	close_fd(&w.epfd);
	return rc;
}
