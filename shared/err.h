/*
 * The one error-code space of webproxyd. Functions return 0 or a negative
 * WP_E* code; WP_ESYS means errno holds the reason. Every process links it.
 */
#ifndef WP_ERR_H
#define WP_ERR_H

enum wp_err {
	WP_OK = 0,
	WP_ESYS = -1,      /* look at errno */
	WP_ENOMEM = -2,    /* allocation failed */
	WP_EINVAL = -3,    /* bad argument or bad input */
	WP_EPARSE = -4,    /* a file or body did not parse */
	WP_ERANGE = -5,    /* a value is out of its range */
	WP_ETOOBIG = -6,   /* a buffer or table would pass its cap */
	WP_ENOENT = -7,    /* no such thing */
	WP_EEXIST = -8,    /* already there */
	WP_EBUSY = -9,     /* try again later */
	WP_ELOCK = -10,    /* a shared lock is not recoverable */
	WP_EVERSION = -11, /* shared memory layout mismatch */
	WP_ENOTOKEN = -12, /* no usable token in the pool */
	WP_ECOOLING = -13, /* tokens exist but all are cooling or exhausted */
};

/* A static string for rc; for WP_ESYS the caller adds strerror(errno). */
const char *wp_strerror(int rc);

#endif
