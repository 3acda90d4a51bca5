/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What volmgrd runs with: its command line, then volmgr.conf. */
#pragma once

#include "config.h"

struct vm_settings {
	const char *pool_path;     /* --pool */
	const char *plugin_path;   /* --plugin-socket */
	const char *control_path;  /* --control-socket */
	const char *control_group; /* --control-group; NULL: root only */
	const char *job_path;      /* --job-socket; NULL: none (unless systemd passes one) */
	/* volmgr.conf (--config, or the default one if it exists), with
	 * --backend over its [pool] backend. */
	struct vm_config config;
};

/* vm_settings_parse's answer when volmgrd is to run. */
#define VM_SETTINGS_RUN (-1)

/* Fill ret from argv and the configuration file, logging each seed rule.
 * Returns VM_SETTINGS_RUN, or the status to exit with at once: 0 after
 * --help or --version, else that of an error already reported (a usage
 * error on stderr, a bad configuration in the log). */
int vm_settings_parse(int argc, char **argv, struct vm_settings *ret);
