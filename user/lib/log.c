// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * log.c - diagnostics to stderr, one line per call.
 *
 * A logger is a small value (verbosity, prefix) owned by its session: there is
 * no global log state.  One fprintf per line keeps lines whole across threads
 * (stdio locks the stream per call).
 *
 * Locks: none of its own (stdio's stream lock only).
 */
#include <stdarg.h>
#include <stdio.h>

#include "vfmig_internal.h"

static const char *const level_name[] = {
	[VFMIG_LOG_ERR] = "error",
	[VFMIG_LOG_WARN] = "warning",
	[VFMIG_LOG_INFO] = "info",
	[VFMIG_LOG_DEBUG] = "debug",
};

void vfmig_log(const struct vfmig_log *lg, int level, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int verbose = lg ? lg->verbose : 0;

	/* Errors and warnings always; info with -v, debug with -vv. */
	if (level > VFMIG_LOG_WARN && level - VFMIG_LOG_WARN > verbose)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "vfio-mig%s%s: %s: %s\n", lg && lg->prefix ? " " : "",
		lg && lg->prefix ? lg->prefix : "", level_name[level], line);
}
