/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volmgr-pool: `volmgr pool init` and `volmgr pool status`.  A separate,
 * dynamically linked helper (libmount, libudev), run by the static CLI;
 * it works on the host as root and never talks to volmgrd. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "exitcode.h"
#include "names.h"
#include "poolsetup.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: volmgr pool init [--pool DIR] [--size SIZE] [--image FILE] [--at-boot [--unit-dir DIR]]\n"
		"       volmgr pool status [--pool DIR] [--json]\n"
		"\n"
		"init: where DIR (default /var/lib/volmgr) is not on btrfs, make a sparse\n"
		"image FILE (default DIR.img, SIZE default 20G), attach it to a loop\n"
		"device, format it (btrfs, label volmgr-pool) and mount it at DIR;\n"
		"--at-boot also writes a systemd mount unit (to /etc/systemd/system, or\n"
		"--unit-dir) so that it comes back at boot.\n"
		"status: device, file system, backend, space and quota state of DIR.\n");
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (s)
		puts(s);
	free(s);
}

static void human(uint64_t b, char buf[static 32])
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 4)
		v /= 1024, i++;
	snprintf(buf, 32, "%.1f %s", v, u[i]);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return VM_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	struct vm_pool_init o = {.pool = "/var/lib/volmgr"};
	bool json = false, at_boot = false;
	static const struct option opts[] = {
		{"pool", required_argument, NULL, 'p'}, {"size", required_argument, NULL, 's'},
		{"image", required_argument, NULL, 'i'}, {"at-boot", no_argument, NULL, 'b'},
		{"unit-dir", required_argument, NULL, 'u'}, {"json", no_argument, NULL, 'j'},
		{"mkfs", required_argument, NULL, 'm'}, {"help", no_argument, NULL, 'h'}, {0},
	};
	optind = 2;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		struct vm_error err = {0};
		switch (c) {
		case 'p': o.pool = optarg; break;
		case 'i': o.image = optarg; break;
		case 'u': o.unit_dir = optarg; break;
		case 'm': o.mkfs = optarg; break;
		case 'b': at_boot = true; break;
		case 'j': json = true; break;
		case 's':
			if (vm_parse_size(optarg, &o.size, &err) < 0) {
				fprintf(stderr, "volmgr pool: %s\n", err.msg);
				return VM_EXIT_INVALID;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return VM_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return VM_EXIT_USAGE;
	}
	if (at_boot && !o.unit_dir)
		o.unit_dir = "/etc/systemd/system";
	if (!at_boot)
		o.unit_dir = NULL;
	struct vm_error err = {0};
	json_t *res = NULL;
	int r;
	if (strcmp(cmd, "init") == 0) {
		r = vm_pool_init(&o, &res, &err);
		if (r == 0 && !json) {
			if (json_is_true(json_object_get(res, "created"))) {
				char sz[32];
				human((uint64_t)json_integer_value(json_object_get(res, "size")), sz);
				printf("pool %s: btrfs on %s (%s, %s sparse), mounted\n", o.pool,
				       json_string_value(json_object_get(res, "device")),
				       json_string_value(json_object_get(res, "image")), sz);
				if (json_object_get(res, "unit"))
					printf("mount unit %s written: systemctl enable %s\n",
					       json_string_value(json_object_get(res, "unit")),
					       strrchr(json_string_value(json_object_get(res, "unit")), '/') + 1);
			} else {
				printf("pool %s: already on btrfs, nothing to do\n", o.pool);
			}
		}
	} else if (strcmp(cmd, "status") == 0) {
		r = vm_pool_status(o.pool, &res, &err);
		if (r == 0 && !json) {
			char size[32], free_[32];
			human((uint64_t)json_integer_value(json_object_get(res, "size")), size);
			human((uint64_t)json_integer_value(json_object_get(res, "free")), free_);
			const char *img = json_string_value(json_object_get(res, "image"));
			printf("pool:        %s\n", o.pool);
			printf("file system: %s, mounted at %s\n",
			       json_string_value(json_object_get(res, "fstype")),
			       json_string_value(json_object_get(res, "mount_point")));
			printf("device:      %s", json_string_value(json_object_get(res, "device")));
			if (img)
				printf(" (image %s)", img);
			printf("\nbackend:     %s\n", json_string_value(json_object_get(res, "backend")));
			printf("space:       %s free of %s\n", free_, size);
			printf("quota:       %s\n", json_string_value(json_object_get(res, "quota")));
		}
	} else {
		usage(stderr);
		return VM_EXIT_USAGE;
	}
	if (r < 0) {
		fprintf(stderr, "volmgr pool: %s\n", err.msg);
		return vm_exit_from_errno(-r);
	}
	if (json)
		print_json(res);
	json_decref(res);
	return 0;
}
