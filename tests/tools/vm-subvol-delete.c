/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A small driver of vm_btrfs_delete for the tests (built, not installed):
 *
 *   vm-subvol-delete [--by-name] [--no-openat2] PARENT NAME
 *
 * deletes the subvolume PARENT/NAME and every subvolume nested in it.
 * Exit 0 when deleted, 1 if the delete failed (the message on stderr),
 * 2 on bad usage.  --by-name destroys by name in the verified directory,
 * as on kernels before 5.7; --no-openat2 forces the O_NOFOLLOW fallback
 * of every fd-relative open. */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "btrfs.h"

static int usage(void)
{
	fprintf(stderr, "usage: vm-subvol-delete [--by-name] [--no-openat2] PARENT NAME\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"by-name", no_argument, NULL, 'b'},
		{"no-openat2", no_argument, NULL, 'n'},
		{0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			vm_btrfs_delete_force_by_name(true);
			break;
		case 'n':
			vm_openat_force_fallback(true);
			break;
		default:
			return usage();
		}
	}
	if (argc - optind != 2)
		return usage();
	int parent = open(argv[optind], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (parent < 0) {
		perror("vm-subvol-delete: open");
		return 2;
	}
	struct vm_error err = {0};
	if (vm_btrfs_delete(parent, argv[optind + 1], &err) < 0) {
		fprintf(stderr, "vm-subvol-delete: %s (errno %d)\n", err.msg, err.code);
		return 1;
	}
	return 0;
}
