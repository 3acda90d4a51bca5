/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgrd's options and configuration file, read before anything is set
 * up: a mistake in either stops it before it touches the pool. */
#include "settings.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "exitcode.h"
#include "log.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: volmgrd [OPTIONS]\n"
		"\n"
		"Serve per-job workspace volumes (btrfs snapshots, reflink clones or\n"
		"copies of cached checkouts) to Docker and Podman.\n"
		"\n"
		"Options:\n"
		"  --pool DIR              pool directory (default /var/lib/volmgr)\n"
		"  --plugin-socket PATH    Docker volume plugin socket\n"
		"                          (default /run/docker/plugins/volmgr.sock)\n"
		"  --control-socket PATH   control socket for the volmgr CLI\n"
		"                          (default /run/volmgr/control.sock)\n"
		"  --control-group GROUP   group allowed to use the control socket\n"
		"                          (mode 0660; default: root only, mode 0600)\n"
		"  --job-socket PATH       the job socket (mode 0666): for job containers\n"
		"                          of any uid, only which and promote of the\n"
		"                          volume whose directory they pass (default:\n"
		"                          none, unless systemd passes one)\n"
		"  --config FILE           configuration (default /etc/volmgr/volmgr.conf,\n"
		"                          which may be missing)\n"
		"  --backend auto|btrfs|reflink|copy\n"
		"                          how volumes are made (default: [pool] backend,\n"
		"                          else auto: probe the pool for btrfs snapshots,\n"
		"                          then reflinks, then a bulk copy)\n"
		"  -h, --help              show this help\n"
		"  --version               show the version\n");
}

int vm_settings_parse(int argc, char **argv, struct vm_settings *ret)
{
	/* Field by field: a compound literal could be built on the stack
	 * first, and the configuration is some 40 KiB. */
	memset(ret, 0, sizeof(*ret));
	ret->pool_path = "/var/lib/volmgr";
	ret->plugin_path = "/run/docker/plugins/volmgr.sock";
	ret->control_path = "/run/volmgr/control.sock";
	const char *config_path = NULL;
	const char *backend_arg = NULL;
	static const struct option opts[] = {
		{"backend", required_argument, NULL, 'B'},
		{"pool", required_argument, NULL, 'p'},
		{"plugin-socket", required_argument, NULL, 'P'},
		{"control-socket", required_argument, NULL, 'C'},
		{"control-group", required_argument, NULL, 'G'},
		{"job-socket", required_argument, NULL, 'J'},
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': ret->pool_path = optarg; break;
		case 'P': ret->plugin_path = optarg; break;
		case 'C': ret->control_path = optarg; break;
		case 'G': ret->control_group = optarg; break;
		case 'J': ret->job_path = optarg; break;
		case 'c': config_path = optarg; break;
		case 'B': backend_arg = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("volmgrd %s\n", VOLMGR_VERSION); return 0;
		default: usage(stderr); return VM_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return VM_EXIT_USAGE;
	}
	enum vm_backend_kind want_backend = VM_BACKEND_AUTO;
	if (backend_arg && vm_backend_parse(backend_arg, &want_backend) < 0) {
		fprintf(stderr, "volmgrd: --backend must be auto, btrfs, reflink or copy\n");
		return VM_EXIT_USAGE;
	}

	struct vm_error err = {0};
	int r = vm_config_load(config_path ? config_path : "/etc/volmgr/volmgr.conf",
			       !config_path, &ret->config, &err);
	if (r < 0) {
		vm_log("error: %s", err.msg);
		return vm_exit_from_errno(-r);
	}
	for (size_t k = 0; k < ret->config.n_seed; k++)
		vm_log("seed rule: %s -> %s", ret->config.seed[k].pattern,
		       ret->config.seed[k].source);
	/* The flag wins over the configuration. */
	if (backend_arg)
		ret->config.pool_backend = want_backend;
	return VM_SETTINGS_RUN;
}
