/*
 * Text for the WP_E* codes. Pure; every process links it.
 */
#include "err.h"

const char *
wp_strerror(int rc)
{
	switch (rc) {
	case WP_OK:
		return "success";
	case WP_ESYS:
		return "system error";
	case WP_ENOMEM:
		return "out of memory";
	case WP_EINVAL:
		return "invalid argument";
	case WP_EPARSE:
		return "parse error";
	case WP_ERANGE:
		return "value out of range";
	case WP_ETOOBIG:
		return "too big";
	case WP_ENOENT:
		return "not found";
	case WP_EEXIST:
		return "already exists";
	case WP_EBUSY:
		return "busy";
	case WP_ELOCK:
		return "lock not recoverable";
	case WP_EVERSION:
		return "shared memory layout mismatch";
	case WP_ENOTOKEN:
		return "no token in pool";
	case WP_ECOOLING:
		return "all tokens cooling or exhausted";
	default:
		return "unknown error";
	}
}
