/*
 * fakegrok's timer thread: resumes suspended MHD connections when their
 * next line is due, so that timed streams (a line every N ms, stalls,
 * first-byte delays) never block an MHD thread. 10,000 slow streams cost
 * one heap entry each and a wake-up per line.
 *
 * A suspended connection is invisible to MHD: it would not notice the
 * client leaving. So the thread also peeks at each waiting socket at least
 * once a second; on EOF or an error it resumes the connection with
 * aborted set, and the owner ends it. The socket cannot be closed under
 * us while suspended: MHD only closes connections it is processing.
 *
 * Owns: the heap (one mutex, fg_timer_mtx; taken for a push or a pop,
 * never around MHD calls). Runs in its own thread; fg_timer_add is called
 * from MHD threads.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "util.h"

#include "fg.h"

#define FG_TIMER_CHECK_NS      1000000000ull /* liveness check period */
#define FG_TIMER_CHECK_GRID_NS 100000000ull
#define FG_TIMER_MIN_GRID_NS   100000ull
#define FG_TIMER_MAX_GRID_NS   20000000ull
#define FG_TIMER_BATCH         1024

/* The heap and its thread: one per process, like the MHD daemon. */
static pthread_mutex_t fg_timer_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fg_timer_cv;
static pthread_t fg_timer_thr;
static struct fg_wait **fg_heap;
static size_t fg_heap_len, fg_heap_cap;
static bool fg_timer_quitting, fg_timer_stopping, fg_timer_running;
/* Readable once fg_timer_quit ran: wakes every fg_timer_sleep at once. */
static int fg_timer_quitfd = -1;

static void
fg_heap_swap(size_t a, size_t b)
{
	struct fg_wait *t = fg_heap[a];

	fg_heap[a] = fg_heap[b];
	fg_heap[b] = t;
	fg_heap[a]->heap_idx = a;
	fg_heap[b]->heap_idx = b;
}

static void
fg_heap_up(size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (fg_heap[p]->key_ns <= fg_heap[i]->key_ns)
			break;
		fg_heap_swap(p, i);
		i = p;
	}
}

static void
fg_heap_down(size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < fg_heap_len && fg_heap[l]->key_ns < fg_heap[m]->key_ns)
			m = l;
		if (r < fg_heap_len && fg_heap[r]->key_ns < fg_heap[m]->key_ns)
			m = r;
		if (m == i)
			break;
		fg_heap_swap(i, m);
		i = m;
	}
}

/* Caller holds fg_timer_mtx. */
static int
fg_heap_push(struct fg_wait *w)
{
	if (fg_heap_len == fg_heap_cap) {
		size_t cap = fg_heap_cap != 0 ? fg_heap_cap * 2 : 1024;
		struct fg_wait **h = realloc(fg_heap, cap * sizeof(*h));

		if (h == NULL)
			return WP_ENOMEM;
		fg_heap = h;
		fg_heap_cap = cap;
	}
	w->heap_idx = fg_heap_len;
	fg_heap[fg_heap_len++] = w;
	fg_heap_up(w->heap_idx);
	return 0;
}

/* Caller holds fg_timer_mtx; the heap is not empty. */
static struct fg_wait *
fg_heap_pop(void)
{
	struct fg_wait *w = fg_heap[0];

	fg_heap_len--;
	if (fg_heap_len > 0) {
		fg_heap[0] = fg_heap[fg_heap_len];
		fg_heap[0]->heap_idx = 0;
		fg_heap_down(0);
	}
	return w;
}

static uint64_t
fg_timer_key(const struct fg_wait *w, uint64_t now)
{
	uint64_t check = now + FG_TIMER_CHECK_NS, k, g;

	if (w->mode == FG_WAIT_DUE && w->due_ns < check) {
		k = w->due_ns;
		g = w->slack_ns;
	} else {
		k = check;
		g = FG_TIMER_CHECK_GRID_NS;
	}
	return g > 0 ? (k + g - 1) / g * g : k;
}

uint64_t
fg_timer_slack(uint64_t wait_ns)
{
	uint64_t g = wait_ns / 64;

	if (g < FG_TIMER_MIN_GRID_NS)
		return 0; /* short waits: exact, few streams use them */
	return g < FG_TIMER_MAX_GRID_NS ? g : FG_TIMER_MAX_GRID_NS;
}

/* True if the client closed its end or the socket failed. */
static bool
fg_timer_gone(int fd)
{
	char c;
	ssize_t n;

	if (fd < 0)
		return false;
	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0)
		return false;
	if (n == 0)
		return true;
	return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static void
fg_timer_resume(struct fg_wait *w, bool abort)
{
	if (abort)
		atomic_store(&w->aborted, true);
	(void)atomic_fetch_sub(&fg_stats.suspended, 1);
	MHD_resume_connection(w->conn); /* thread-safe; wakes MHD's loop */
}

void
fg_timer_add(struct fg_wait *w)
{
	bool now_abort, wake;

	(void)atomic_fetch_add(&fg_stats.suspended, 1);
	WP_ASSERT(pthread_mutex_lock(&fg_timer_mtx) == 0);
	w->key_ns = fg_timer_key(w, fg_mono_ns());
	now_abort = fg_timer_quitting;
	if (!now_abort && fg_heap_push(w) != 0) {
		log_warnx("timer: out of memory, ending a waiting connection");
		now_abort = true;
	}
	wake = !now_abort && w->heap_idx == 0;
	if (wake)
		(void)pthread_cond_signal(&fg_timer_cv);
	WP_ASSERT(pthread_mutex_unlock(&fg_timer_mtx) == 0);
	if (now_abort)
		fg_timer_resume(w, true); /* legal right after the suspend */
}

/*
 * Handle a batch of due entries outside the lock. Entries whose line is
 * due are resumed without a peek (the write will tell MHD if the client
 * left), and all resumes go out in one tight loop: MHD takes its resume
 * lock for a walk over every suspended connection, so resumes trickling
 * in one by one would cost one walk each.
 */
static void
fg_timer_fire(struct fg_wait **due, size_t n, bool quitting)
{
	struct fg_wait *again[FG_TIMER_BATCH], *go[FG_TIMER_BATCH];
	size_t i, nagain = 0, ngo = 0;
	uint64_t now = fg_mono_ns();

	for (i = 0; i < n; i++) {
		struct fg_wait *w = due[i];

		if (quitting) {
			atomic_store(&w->aborted, true);
			go[ngo++] = w;
		} else if (w->mode == FG_WAIT_DUE && w->due_ns <= now) {
			go[ngo++] = w;
		} else if (fg_timer_gone(w->fd)) {
			atomic_store(&w->aborted, true);
			go[ngo++] = w;
		} else {
			again[nagain++] = w;
		}
	}
	for (i = 0; i < ngo; i++)
		fg_timer_resume(go[i], false);
	if (nagain == 0)
		return;
	WP_ASSERT(pthread_mutex_lock(&fg_timer_mtx) == 0);
	for (i = 0; i < nagain; i++) {
		again[i]->key_ns = fg_timer_key(again[i], now);
		if (fg_timer_quitting || fg_heap_push(again[i]) != 0) {
			WP_ASSERT(pthread_mutex_unlock(&fg_timer_mtx) == 0);
			fg_timer_resume(again[i], true);
			WP_ASSERT(pthread_mutex_lock(&fg_timer_mtx) == 0);
		}
	}
	WP_ASSERT(pthread_mutex_unlock(&fg_timer_mtx) == 0);
}

static void *
fg_timer_main(void *arg)
{
	struct fg_wait *due[FG_TIMER_BATCH];

	(void)arg;
	WP_ASSERT(pthread_mutex_lock(&fg_timer_mtx) == 0);
	while (!fg_timer_stopping) {
		uint64_t now = fg_mono_ns();
		size_t n = 0;
		bool quitting = fg_timer_quitting;

		while (n < FG_TIMER_BATCH && fg_heap_len > 0 &&
		    (quitting || fg_heap[0]->key_ns <= now))
			due[n++] = fg_heap_pop();
		if (n > 0) {
			WP_ASSERT(pthread_mutex_unlock(&fg_timer_mtx) == 0);
			fg_timer_fire(due, n, quitting);
			WP_ASSERT(pthread_mutex_lock(&fg_timer_mtx) == 0);
			continue;
		}
		if (fg_heap_len == 0) {
			(void)pthread_cond_wait(&fg_timer_cv, &fg_timer_mtx);
		} else {
			uint64_t at = fg_heap[0]->key_ns;
			struct timespec ts = {
				.tv_sec = (time_t)(at / 1000000000ull),
				.tv_nsec = (long)(at % 1000000000ull),
			};

			/* ETIMEDOUT is the normal way out. */
			(void)pthread_cond_timedwait(
			    &fg_timer_cv, &fg_timer_mtx, &ts);
		}
	}
	WP_ASSERT(pthread_mutex_unlock(&fg_timer_mtx) == 0);
	return NULL;
}

int
fg_timer_start(void)
{
	pthread_condattr_t ca;
	int e;

	/* The heap keys come from CLOCK_MONOTONIC (util_mono_ns). */
	if ((e = pthread_condattr_init(&ca)) != 0 ||
	    (e = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) != 0 ||
	    (e = pthread_cond_init(&fg_timer_cv, &ca)) != 0) {
		errno = e;
		return WP_ESYS;
	}
	(void)pthread_condattr_destroy(&ca);
	if ((fg_timer_quitfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return WP_ESYS;
	if ((e = pthread_create(&fg_timer_thr, NULL, fg_timer_main, NULL)) !=
	    0) {
		errno = e;
		return WP_ESYS;
	}
	fg_timer_running = true;
	return 0;
}

void
fg_timer_quit(void)
{
	WP_ASSERT(pthread_mutex_lock(&fg_timer_mtx) == 0);
	fg_timer_quitting = true;
	(void)pthread_cond_signal(&fg_timer_cv);
	WP_ASSERT(pthread_mutex_unlock(&fg_timer_mtx) == 0);
	if (fg_timer_quitfd >= 0 &&
	    eventfd_write(fg_timer_quitfd, 1) != 0) /* non-blocking */
		log_warn("timer: waking the sleeping streams");
}

void
fg_timer_stop(void)
{
	if (!fg_timer_running)
		return;
	WP_ASSERT(pthread_mutex_lock(&fg_timer_mtx) == 0);
	fg_timer_stopping = true;
	(void)pthread_cond_signal(&fg_timer_cv);
	WP_ASSERT(pthread_mutex_unlock(&fg_timer_mtx) == 0);
	(void)pthread_join(fg_timer_thr, NULL); /* it exits promptly */
	fg_timer_running = false;
	free(fg_heap);
	fg_heap = NULL;
	fg_heap_len = fg_heap_cap = 0;
	(void)pthread_cond_destroy(&fg_timer_cv);
	close_fd(&fg_timer_quitfd);
}

int
fg_timer_sleep(struct fg_wait *w)
{
	struct pollfd p[2];
	struct timespec ts, *tsp;
	uint64_t now, left;

	p[0].fd = w->fd;
	p[0].events = POLLRDHUP; /* the client's FIN; HUP and ERR come too */
	p[1].fd = fg_timer_quitfd;
	p[1].events = POLLIN;
	for (;;) {
		now = fg_mono_ns();
		if (w->mode == FG_WAIT_DUE && now >= w->due_ns)
			return 0;
		tsp = NULL;
		if (w->mode == FG_WAIT_DUE) {
			left = w->due_ns - now;
			ts.tv_sec = (time_t)(left / 1000000000ull);
			ts.tv_nsec = (long)(left % 1000000000ull);
			tsp = &ts;
		}
		p[0].revents = p[1].revents = 0;
		if (ppoll(p, 2, tsp, NULL) < 0 && errno != EINTR)
			break;
		if (p[0].revents != 0 || p[1].revents != 0 || w->fd < 0)
			break;
	}
	atomic_store(&w->aborted, true);
	return WP_EINVAL;
}

size_t
fg_timer_count(void)
{
	size_t n;

	WP_ASSERT(pthread_mutex_lock(&fg_timer_mtx) == 0);
	n = fg_heap_len;
	WP_ASSERT(pthread_mutex_unlock(&fg_timer_mtx) == 0);
	return n;
}
