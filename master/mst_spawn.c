/*
 * Master: the listening sockets (one SO_REUSEPORT socket per worker slot,
 * kept by the master so a respawned worker inherits its queue) and the
 * fork of each child. The child side sets itself up here and then becomes
 * a worker (wrk_main) or the janitor (jan_main); it never returns.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "mst.h"
#include "util.h"
#include "wrk.h"

void
mst_apply_opts(const struct mst_opts *o, struct cfg *c)
{
	if (o->listen != NULL)
		(void)util_strlcpy(c->listen, o->listen, sizeof(c->listen));
	if (o->data_dir != NULL)
		(void)util_strlcpy(
		    c->data_dir, o->data_dir, sizeof(c->data_dir));
	if (o->workers >= 0)
		c->workers = o->workers;
}

static bool
mst_host_loopback(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

int
mst_check_cfg(const struct cfg *c, char *err, size_t errlen)
{
	char host[CFG_STR_MAX];
	uint16_t port;

	if (util_split_hostport(c->listen, host, sizeof(host), &port) != 0) {
		(void)snprintf(err, errlen,
		    "server.listen: \"%s\" is not ADDR:PORT", c->listen);
		return WP_EINVAL;
	}
	if (c->n_api_keys == 0 && !mst_host_loopback(host)) {
		(void)snprintf(err, errlen,
		    "server.api_keys is empty but server.listen (%s) is not a "
		    "loopback address: refusing to serve the network without "
		    "API keys",
		    c->listen);
		return WP_EINVAL;
	}
	return 0;
}

unsigned
mst_nworkers(const struct cfg *c)
{
	long n;

	if (c->workers > 0)
		return (unsigned)c->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > MST_WSLOTS ? MST_WSLOTS : (unsigned)n;
}

static int
mst_bind_one(const struct addrinfo *ai, char *err, size_t errlen)
{
	int fd, on = 1;

	fd = socket(ai->ai_family,
	    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0)
		goto fail;
	return fd;
fail:
	(void)snprintf(err, errlen, "listen: %s", strerror(errno));
	close_fd(&fd);
	return -1;
}

int
mst_listen_open(struct mst *m, unsigned n, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[CFG_STR_MAX], port[8];
	const char *colon;
	unsigned i;
	int rc = WP_EINVAL;

	colon = strrchr(m->cfg.listen, ':');
	if (colon == NULL || (size_t)(colon - m->cfg.listen) >= sizeof(host))
		goto bad;
	memcpy(host, m->cfg.listen, (size_t)(colon - m->cfg.listen));
	host[colon - m->cfg.listen] = '\0';
	if (host[0] == '[') { /* [::1]:3000 */
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	(void)snprintf(port, sizeof(port), "%s", colon + 1);
	/* Port 0: the first socket picks one, the others share it. */
	for (i = 0; i < n; i++) {
		if (m->ws[i].fd >= 0)
			continue;
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
			goto bad;
		m->ws[i].fd = mst_bind_one(res, err, errlen);
		freeaddrinfo(res);
		res = NULL;
		if (m->ws[i].fd < 0) {
			rc = WP_ESYS;
			goto out;
		}
		if (strcmp(port, "0") == 0 &&
		    getsockname(m->ws[i].fd, (struct sockaddr *)&ss, &sslen) ==
		        0) {
			uint16_t p = ss.ss_family == AF_INET6
			    ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
			    : ntohs(((struct sockaddr_in *)&ss)->sin_port);

			(void)snprintf(port, sizeof(port), "%u", p);
			/* The port now known replaces ":0"; it fits there. */
			(void)snprintf(
			    strrchr(m->cfg.listen, ':') + 1, 6, "%u", p);
		}
	}
	return 0;
bad:
	(void)snprintf(
	    err, errlen, "listen: cannot resolve \"%s\"", m->cfg.listen);
out:
	mst_listen_close_from(m, 0);
	return rc;
}

void
mst_listen_close_from(struct mst *m, unsigned n)
{
	unsigned i;

	for (i = n; i < MST_WSLOTS; i++)
		close_fd(&m->ws[i].fd);
}

struct mst_child *
mst_child_find(struct mst *m, pid_t pid)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(m->ch); i++)
		if (m->ch[i].pid == pid && pid != 0)
			return &m->ch[i];
	return NULL;
}

const char *
mst_child_label(enum shm_role role, int wslot, char *buf, size_t len)
{
	if (role == SHM_ROLE_WORKER)
		(void)snprintf(buf, len, "worker %d", wslot + 1);
	else
		(void)snprintf(buf, len, "%s", shm_role_name[role]);
	return buf;
}

/* In the child: drop what belongs to the master, then run the role. */
static void __attribute__((noreturn)) mst_child_main(
    struct mst *m, enum shm_role role, int wslot, int pslot, pid_t master)
{
	char name[32];
	int i, fd = -1;

	/* Die with the master, even if it is SIGKILLed. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != master)
		_exit(0);
	for (i = 0; i < MST_WSLOTS; i++) {
		if (i == wslot)
			fd = m->ws[i].fd;
		else
			close_fd(&m->ws[i].fd);
	}
	/*
	 * token.json's base (~14 MB with 100,000 tokens) would stay mapped
	 * in every child. Unless the writer thread was replacing it as we
	 * forked: then it is left as it is.
	 */
	if (!m->writer_on)
		tokfile_forget(m->tok_base);
	m->tok_base = NULL;
	if (role == SHM_ROLE_WORKER) {
		(void)snprintf(name, sizeof(name), "worker/%d", wslot + 1);
		log_procinit(name);
		mst_title_set("webproxyd: worker %d", wslot + 1);
		_exit(wrk_main(&m->shm, &m->cfg, pslot, fd, m->sigfd));
	}
	log_procinit("janitor");
	mst_title_set("webproxyd: janitor");
	jan_main(&m->shm, &m->cfg, pslot, m->sigfd);
}

pid_t
mst_spawn(struct mst *m, enum shm_role role, int wslot)
{
	struct mst_child *c;
	struct shm_proc *p;
	pid_t pid, master = getpid();
	char name[24];
	int pslot;

	for (c = m->ch; c < m->ch + ARRAY_LEN(m->ch) && c->pid != 0;)
		c++;
	if (c == m->ch + ARRAY_LEN(m->ch) ||
	    (pslot = shm_proc_alloc(&m->shm)) < 0) {
		log_errx("no free process slot");
		return -1;
	}
	p = shm_proc(&m->shm, (uint32_t)pslot);
	atomic_store(&p->state, SHM_PS_STARTING);
	atomic_store(&p->role, role);
	atomic_store(&p->gen, m->gen);
	atomic_store(&p->heartbeat_ms, util_mono_ms());
	p->wslot = (uint32_t)(wslot < 0 ? 0 : wslot);
	if ((pid = fork()) < 0) {
		log_err("fork");
		atomic_store(&p->role, SHM_ROLE_FREE);
		return -1;
	}
	if (pid == 0)
		mst_child_main(m, role, wslot, pslot, master);
	atomic_store(&p->pid, (int32_t)pid);
	memset(c, 0, sizeof(*c));
	c->pid = pid;
	c->role = role;
	c->wslot = wslot;
	c->pslot = pslot;
	c->gen = m->gen;
	c->started_ms = util_mono_ms();
	log_info("%s started as pid %d (generation %llu)",
	    mst_child_label(role, wslot, name, sizeof(name)), (int)pid,
	    (unsigned long long)m->gen);
	return pid;
}
