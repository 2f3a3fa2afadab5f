/*
 * webproxyd: the command line, then the master's start-up order:
 * config, token.json, shared memory and the tokens into it, listening
 * sockets, detach, run.
 * See webproxyd(8).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "err.h"
#include "log.h"
#include "mst.h"
#include "util.h"

#ifndef WP_VERSION
#define WP_VERSION "0.1.0"
#endif
#ifndef WP_DEFAULT_CONFIG
#define WP_DEFAULT_CONFIG "conf/config.yaml"
#endif

static void
usage(FILE *fp)
{
	(void)fprintf(fp,
	    "usage: webproxyd [-ftV] [-c file] [-d dir] [-l addr:port] "
	    "[-p pidfile] [-w n]\n"
	    "                 [-s reload|stop|quit|reopen]\n"
	    "       webproxyd --hash-password < password\n");
}

static int
hash_password(void)
{
	char pw[4097], hash[crypto_pwhash_STRBYTES];
	size_t n;

	n = fread(pw, 1, sizeof(pw) - 1, stdin);
	if (ferror(stdin) || n == sizeof(pw) - 1) {
		(void)fprintf(stderr,
		    "webproxyd: password: read error or "
		    "longer than 4096 bytes\n");
		return 1;
	}
	if (n > 0 && pw[n - 1] == '\n')
		n--;
	if (n > 0 && pw[n - 1] == '\r')
		n--;
	if (n == 0) {
		(void)fprintf(stderr, "webproxyd: password: empty\n");
		return 1;
	}
	if (crypto_pwhash_str(hash, pw, n, crypto_pwhash_OPSLIMIT_INTERACTIVE,
	        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		sodium_memzero(pw, sizeof(pw));
		(void)fprintf(stderr, "webproxyd: password: out of memory\n");
		return 1;
	}
	sodium_memzero(pw, sizeof(pw));
	(void)printf("%s\n", hash);
	return 0;
}

static void
pid_path(const struct mst_opts *o, const struct cfg *c, char *buf, size_t len)
{
	if (o->pidfile != NULL)
		(void)snprintf(buf, len, "%s", o->pidfile);
	else
		(void)snprintf(buf, len, "%s/webproxyd.pid", c->data_dir);
}

static pid_t
pid_read(const char *path)
{
	char buf[32];
	int64_t v;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close_fd(&fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (util_parse_i64(buf, 1, 4194304, &v) != 0)
		return -1;
	return (pid_t)v;
}

static int
send_signal(const char *path, const char *what)
{
	static const struct {
		const char *name;
		int sig;
	} map[] = {
		{ "reload", SIGHUP },
		{ "stop", SIGTERM },
		{ "quit", SIGQUIT },
		{ "reopen", SIGUSR1 },
	};
	size_t i;
	pid_t pid;

	for (i = 0; i < ARRAY_LEN(map); i++)
		if (strcmp(map[i].name, what) == 0)
			break;
	if (i == ARRAY_LEN(map)) {
		(void)fprintf(stderr,
		    "webproxyd: -s %s: want reload, stop, "
		    "quit or reopen\n",
		    what);
		return 1;
	}
	if ((pid = pid_read(path)) < 0) {
		(void)fprintf(
		    stderr, "webproxyd: %s: no running daemon\n", path);
		return 1;
	}
	if (kill(pid, map[i].sig) != 0) {
		(void)fprintf(stderr, "webproxyd: kill %d: %s\n", (int)pid,
		    strerror(errno));
		return 1;
	}
	return 0;
}

/* Refuse to start twice on one data folder; write our pid. */
static int
pid_write(const char *path)
{
	char buf[32];
	pid_t old;
	int fd, n;

	if ((old = pid_read(path)) > 0 && old != getpid() &&
	    kill(old, 0) == 0) {
		log_errx(
		    "%s: webproxyd already runs as pid %d", path, (int)old);
		return WP_EEXIST;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_err("%s", path);
		return WP_ESYS;
	}
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (util_write_all(fd, buf, (size_t)n) != 0) {
		log_err("%s", path);
		close_fd(&fd);
		return WP_ESYS;
	}
	close_fd(&fd);
	return 0;
}

static int
mkdirs(const char *path, mode_t mode)
{
	char buf[CFG_STR_MAX + 64], *p;

	if (util_strlcpy(buf, path, sizeof(buf)) != 0)
		return WP_ETOOBIG;
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return WP_ESYS;
		*p = '/';
	}
	if (mkdir(buf, mode) != 0 && errno != EEXIST)
		return WP_ESYS;
	return 0;
}

/* Read token.json into m->tok_base (seen: tokfile_read_seen); prints why not.
 */
static int
load_tokens(struct mst *m, _Atomic uint32_t *seen)
{
	char err[CFG_ERR_MAX];
	int rc;

	if ((rc = tokfile_read_seen(
	         m->tok_path, &m->tok_base, err, sizeof(err), seen)) != 0) {
		(void)fprintf(
		    stderr, "%s\n", rc == WP_EPARSE ? err : wp_strerror(rc));
		return 1;
	}
	if (tokfile_count(m->tok_base) > m->cfg.max_tokens) {
		(void)fprintf(stderr,
		    "%s: %zu tokens, more than grok.max_tokens (%u)\n",
		    m->tok_path, tokfile_count(m->tok_base), m->cfg.max_tokens);
		return 1;
	}
	return 0;
}

/* Load and check config (and for -t token.json too, which start reads). */
static int
load_all(struct mst *m, bool test)
{
	char err[CFG_ERR_MAX];

	if (cfg_load(m->opts.config, &m->cfg, err, sizeof(err)) != 0) {
		(void)fprintf(stderr, "%s\n", err);
		return 1;
	}
	mst_apply_opts(&m->opts, &m->cfg);
	if (mst_check_cfg(&m->cfg, err, sizeof(err)) != 0) {
		(void)fprintf(stderr, "%s: %s\n", m->opts.config, err);
		return 1;
	}
	(void)snprintf(m->tok_path, sizeof(m->tok_path),
	    "%s/accounts/grok/token.json", m->cfg.data_dir);
	if (!test)
		return 0;
	if (load_tokens(m, NULL) != 0)
		return 1;
	(void)printf("%s: ok\n%s: ok, %zu tokens\n", m->opts.config,
	    m->tok_path, tokfile_count(m->tok_base));
	return 0;
}

/*
 * Loading a large pool is mostly the kernel giving the token table its
 * pages (zeroed shared memory, about 1 ms per MB on a small VM), so a
 * second thread faults rows in, from the first, while the master reads
 * token.json (following the entries read so far: never a row no token
 * will fill) and then ahead of tok_add_all. The thread takes no lock and
 * is gone before anything forks.
 */
#define MST_PREFAULT_ROWS  1024         /* per call: it stops soon once told */
#define MST_PREFAULT_BYTES (1u << 20)   /* a smaller token.json: no thread */
#define MST_PREFAULT_WAIT  (100 * 1000) /* ns, while the reader is behind */

struct mst_prefault {
	struct tok_table *t;
	_Atomic uint32_t seen; /* entries read so far (tokfile_read_seen) */
	_Atomic uint32_t rows; /* all of them, once read; 0 before */
	_Atomic bool stop;
	pthread_t th;
	bool on;
};

static void *
mst_prefault_main(void *arg)
{
	const struct timespec wait = { 0, MST_PREFAULT_WAIT };
	struct mst_prefault *p = arg;
	uint32_t done = 0, rows, lim, n;

	while (!atomic_load(&p->stop)) {
		rows = atomic_load(&p->rows);
		lim = rows != 0 ? rows : atomic_load(&p->seen);
		if (done >= lim) {
			if (rows != 0)
				break;
			(void)nanosleep(&wait, NULL);
			continue;
		}
		n = lim - done < MST_PREFAULT_ROWS ? lim - done
		                                   : MST_PREFAULT_ROWS;
		if (tok_table_prefault(p->t, done, n) != 0)
			break; /* an old kernel: the load faults them in */
		done += n;
	}
	return NULL;
}

/*
 * token.json into m->tok_base and the table, the thread beside. Returns
 * 0, or 1 when token.json is bad (why is on stderr); a table that will
 * not take it is fatal.
 */
static int
load_table(struct mst *m)
{
	struct mst_prefault p = { .t = m->shm.tok };
	char err[CFG_ERR_MAX];
	struct stat st;
	int rc, lrc = 0;

	p.on = stat(m->tok_path, &st) == 0 &&
	    st.st_size >= MST_PREFAULT_BYTES &&
	    pthread_create(&p.th, NULL, mst_prefault_main, &p) == 0;
	if ((rc = load_tokens(m, &p.seen)) == 0) {
		atomic_store(&p.rows, (uint32_t)tokfile_count(m->tok_base));
		lrc = tokfile_load(m->shm.tok, m->tok_base, err, sizeof(err));
	}
	if (p.on) {
		atomic_store(&p.stop, true);
		(void)pthread_join(p.th, NULL); /* joinable and ours */
	}
	if (lrc != 0)
		fatalx("%s", err);
	return rc;
}

static int
start(struct mst *m)
{
	char err[CFG_ERR_MAX];
	enum log_level lvl = (enum log_level)m->cfg.log_level;
	int rc;

	log_setlevel(lvl);
	if (m->cfg.log_file[0] != '\0' && log_open(m->cfg.log_file) != 0)
		fatal("%s", m->cfg.log_file);
	if (mkdirs(m->cfg.data_dir, 0700) != 0)
		fatal("data folder %s", m->cfg.data_dir);
	pid_path(&m->opts, &m->cfg, m->pid_path, sizeof(m->pid_path));
	/* Libraries that must be set up once, before any fork. */
	if (sodium_init() < 0)
		fatalx("libsodium: cannot initialise");
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		fatalx("libcurl: cannot initialise");
	if ((rc = shm_create(&m->shm, m->cfg.max_tokens)) != 0)
		fatal("shared memory (%u tokens)", m->cfg.max_tokens);
	if (load_table(m) != 0)
		return 1; /* why is on stderr */
	m->tok_saved = tok_table_dirty(m->shm.tok);
	m->nworkers = mst_nworkers(&m->cfg);
	if (mst_listen_open(m, m->nworkers, err, sizeof(err)) != 0)
		fatalx("%s", err);
	if (!m->opts.foreground) {
		if (m->cfg.log_file[0] == '\0')
			log_warnx("detaching without server.log_file: "
			          "the log goes nowhere");
		if (daemon(1, 0) != 0)
			fatal("daemon");
	}
	if (pid_write(m->pid_path) != 0)
		return 1;
	return mst_run(m);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "hash-password", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct mst m; /* large: keep it off the stack */
	const char *sig = NULL;
	bool test = false;
	int64_t v;
	int ch;

	m.opts.config = WP_DEFAULT_CONFIG;
	m.opts.workers = -1;
	m.sigfd = -1;
	for (ch = 0; ch < MST_WSLOTS; ch++)
		m.ws[ch].fd = -1;
	log_procinit("webproxyd");
	/* First: it moves argv to the heap, where optarg will point. */
	mst_title_init(argc, argv);
	while ((ch = getopt_long(
	            argc, argv, "c:d:fhl:p:s:tVw:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			m.opts.config = optarg;
			break;
		case 'd':
			m.opts.data_dir = optarg;
			break;
		case 'f':
			m.opts.foreground = true;
			break;
		case 'H':
			return hash_password();
		case 'h':
			usage(stdout);
			return 0;
		case 'l':
			m.opts.listen = optarg;
			break;
		case 'p':
			m.opts.pidfile = optarg;
			break;
		case 's':
			sig = optarg;
			break;
		case 't':
			test = true;
			break;
		case 'V':
			(void)printf("webproxyd %s\n", WP_VERSION);
			return 0;
		case 'w':
			if (util_parse_i64(optarg, 0, MST_WSLOTS, &v) != 0) {
				(void)fprintf(stderr,
				    "webproxyd: -w %s: want 0 to %d\n", optarg,
				    MST_WSLOTS);
				return 1;
			}
			m.opts.workers = (int)v;
			break;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	if (sig != NULL) {
		char path[CFG_STR_MAX + 32];
		char err[CFG_ERR_MAX];

		/* The pid file's place may come from the config. */
		if (cfg_load(m.opts.config, &m.cfg, err, sizeof(err)) != 0)
			cfg_defaults(&m.cfg);
		mst_apply_opts(&m.opts, &m.cfg);
		pid_path(&m.opts, &m.cfg, path, sizeof(path));
		return send_signal(path, sig);
	}
	if (load_all(&m, test) != 0)
		return 1;
	if (test)
		return 0;
	log_procinit("master");
	return start(&m);
}
