/*
 * The cache janitor: its own process, forked by the master, that keeps
 * <data_dir>/data/temp/image and .../video under image_cache_max_size_mb
 * and video_cache_max_size_mb, deleting the oldest files first. It sweeps
 * on a timer and whenever a worker wakes it (after a download, for a
 * clear request) or the master does (after a reload, which may lower a
 * limit); the limits come from the published config in shared memory, so
 * a reload applies at once. It publishes sizes and counts there for
 * /metrics and the admin page. A file deleted while it is being served
 * stays readable to that transfer. SIGTERM and SIGQUIT stop it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mst.h"
#include "util.h"

#define JAN_TICK_MS     10000
#define JAN_STALE_TMP_S 3600 /* a temp file this old lost its writer */
#define JAN_MAX_FILES   1000000

struct jan_file {
	char name[64];
	int64_t mtime_ns;
	uint64_t size;
};

static int
jan_cmp_age(const void *a, const void *b)
{
	const struct jan_file *x = a, *y = b;

	return x->mtime_ns < y->mtime_ns ? -1 : x->mtime_ns > y->mtime_ns;
}

/* One folder: measure, clear if asked, trim to the limit oldest first. */
static void
jan_sweep_dir(struct shm *shm, const struct cfg *cfg, int i)
{
	struct shm_cache *sc = &shm->hdr->cache;
	uint64_t limit, total = 0, nfiles = 0, swept = 0;
	uint64_t want_clear = atomic_load(&sc->clear_req[i]);
	bool clear = want_clear != atomic_load(&sc->clear_done[i]);
	struct jan_file *files = NULL, *nf;
	size_t n = 0, cap = 0, k;
	char dir[CFG_STR_MAX + 32];
	struct dirent *de;
	struct stat st;
	int64_t now = util_now_ms() / 1000;
	DIR *d;
	int dfd;

	limit = (uint64_t)(i == 0 ? cfg->image_cache_max_size_mb
	                          : cfg->video_cache_max_size_mb) *
	    1024u * 1024u;
	(void)snprintf(dir, sizeof(dir), "%s/data/temp/%s", cfg->data_dir,
	    i == 0 ? "image" : "video");
	if ((d = opendir(dir)) == NULL) {
		if (errno != ENOENT)
			log_warn("janitor: %s", dir);
		goto publish;
	}
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' &&
		    strncmp(de->d_name, ".tmp-", 5) != 0)
			continue;
		/* Gone already (a clear, a race): simply not counted. */
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (de->d_name[0] == '.') {
			/* Being written, unless its writer died long ago. */
			if (now - st.st_mtime > JAN_STALE_TMP_S)
				(void)unlinkat(dfd, de->d_name, 0);
			continue;
		}
		if (clear) {
			if (unlinkat(dfd, de->d_name, 0) == 0)
				swept++;
			continue;
		}
		if (strlen(de->d_name) >= sizeof(files[0].name) ||
		    n >= JAN_MAX_FILES)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			if ((nf = realloc(files, cap * sizeof(*files))) == NULL)
				break; /* measure what we have; next pass */
			files = nf;
		}
		/* The length was checked above. */
		memcpy(files[n].name, de->d_name, strlen(de->d_name) + 1);
		files[n].mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
		    st.st_mtim.tv_nsec;
		files[n].size = (uint64_t)st.st_size;
		total += files[n].size;
		n++;
	}
	nfiles = n;
	if (total > limit) {
		qsort(files, n, sizeof(*files), jan_cmp_age);
		for (k = 0; k < n && total > limit; k++) {
			if (unlinkat(dfd, files[k].name, 0) != 0 &&
			    errno != ENOENT) {
				log_warn("janitor: %s/%s", dir, files[k].name);
				continue;
			}
			total -= files[k].size;
			nfiles--;
			swept++;
		}
		log_info("janitor: %s: %llu files deleted, %llu bytes left",
		    dir, (unsigned long long)swept, (unsigned long long)total);
	}
	(void)closedir(d);
publish:
	free(files);
	atomic_store(&sc->bytes[i], total);
	atomic_store(&sc->files[i], nfiles);
	atomic_fetch_add(&sc->swept, swept);
	if (clear)
		atomic_store(&sc->clear_done[i], want_clear);
}

void
jan_main(struct shm *shm, const struct cfg *cfg, int pslot, int sigfd)
{
	struct shm_proc *me = shm_proc(shm, (uint32_t)pslot);
	struct signalfd_siginfo si;
	struct cfg *live;
	struct pollfd pfd[2];
	uint64_t n;
	bool stop = false;

	(void)cfg; /* the live config is read from shm on every pass */
	if ((live = malloc(sizeof(*live))) == NULL)
		_exit(1);
	atomic_store(&me->state, SHM_PS_READY);
	while (!stop) {
		(void)shm_cfg_read(shm, live);
		jan_sweep_dir(shm, live, 0);
		jan_sweep_dir(shm, live, 1);
		atomic_store(&me->heartbeat_ms, util_mono_ms());
		pfd[0].fd = sigfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = shm->wake_fd;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, JAN_TICK_MS) < 0 && errno != EINTR)
			_exit(1);
		if (pfd[1].revents & POLLIN) /* a wake-up: reset the count */
			if (read(shm->wake_fd, &n, sizeof(n)) < 0)
				n = 0;
		while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT ||
			    si.ssi_signo == SIGQUIT)
				stop = true;
			else if (si.ssi_signo == SIGUSR1)
				(void)log_reopen(); /* nowhere to report */
		}
	}
	free(live);
	atomic_store(&me->state, SHM_PS_EXITED);
	_exit(0);
}
