/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vfio-mig.h - what the vfio-mig tool's files share: the parsed command line
 * (vfio-mig-args.c) that the commands (vfio-mig.c) run.
 */
#ifndef VFIO_MIG_H
#define VFIO_MIG_H

#include <stdbool.h>
#include <stdio.h>

#include "vfmig.h"

enum cmd { CMD_SEND, CMD_RECV, CMD_MIGRATE, CMD_INFO };

struct args {
	enum cmd cmd;
	struct vfmig_options o;
	const char *listen;
	const char *to;
	bool json;
	bool quiet;
	bool insecure;		     /* --insecure: listen on the network without TLS */
	struct vfmig_tls_config tls; /* --tls-*; no TLS unless a PSK file or a directory */
	const char *allow_dn[16];
	char **devs;
	int ndevs;
};

/* Print --help to @f. */
void usage(FILE *f);
/* Parse argv (after the command); 0, or -1 with the error printed. */
int parse_args(int argc, char **argv, struct args *a);

#endif /* VFIO_MIG_H */
