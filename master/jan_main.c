/*
 * The cache janitor: its own process, forked by the master, that keeps
 * <data_dir>/data/temp/image and .../video under their size limits. It
 * reads the limits from the published config in shared memory on every
 * pass, so a reload applies at once. SIGTERM and SIGQUIT stop it.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "mst.h"
#include "util.h"

#define JAN_TICK_MS 1000

void
jan_main(struct shm *shm, const struct cfg *cfg, int pslot, int sigfd)
{
	struct shm_proc *me = shm_proc(shm, (uint32_t)pslot);
	struct signalfd_siginfo si;
	struct pollfd pfd;
	bool stop = false;

	(void)cfg; /* the live config is read from shm, see above */
	atomic_store(&me->state, SHM_PS_READY);
	while (!stop) {
		pfd.fd = sigfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, JAN_TICK_MS) < 0 && errno != EINTR)
			_exit(1);
		while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT ||
			    si.ssi_signo == SIGQUIT)
				stop = true;
			else if (si.ssi_signo == SIGUSR1)
				(void)log_reopen(); /* nowhere to report */
		}
		atomic_store(&me->heartbeat_ms, util_mono_ms());
		/* XXX: #4 sweeps the media cache here. */
	}
	atomic_store(&me->state, SHM_PS_EXITED);
	_exit(0);
}
