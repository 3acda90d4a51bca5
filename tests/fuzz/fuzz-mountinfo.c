/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "In use" from a mount table: vm_inuse_scan_mountinfo, which reads a
 * /proc/PID/mountinfo file with libmount.  The input is written to a
 * memfd and read back through /proc/self/fd/N.
 *
 * Input: one byte choosing the pool's device and the volumes' prefix,
 * then the mountinfo text.
 *
 * Checks:
 *  - the scan succeeds (or says -ENOENT, and then counts nothing);
 *  - counts are only kept for names that pass the name rule (every key
 *    of the result is a volume name), each at least 1;
 *  - there are no more counts than lines, plus, where overlay layers
 *    are looked at, one per layer an overlay line can name (each
 *    follows an "=" or a ":"; one line names several volumes);
 *  - scanning the same file again into the same object adds exactly the
 *    same counts (vm_inuse_scan calls it once per mount namespace). */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fuzz.h"

#include "inuse.h"
#include "names.h"

static int memfd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init_once();
	if (size < 1 || size > 1024 * 1024)
		return 0;
	/* what the manager passes: the volumes directory inside the file
	 * system, "/volumes" unless the pool is a subvolume */
	static const char *const prefixes[] = {"/volumes", "/@volmgr/volumes", "/@/volmgr/volumes",
					       "/srv/pool/volumes"};
	const char *prefix = prefixes[data[0] & 3];
	dev_t dev = (data[0] & 4) ? makedev(259, 2) : makedev(0, 45);
	/* overlay layers are looked at (an absolute path) or not */
	const struct vm_inuse_where where = {dev, prefix, (data[0] & 8) ? "/var/lib/volmgr/volumes" : NULL};
	data++, size--;

	if (memfd < 0) {
		memfd = memfd_create("fuzz-mountinfo", MFD_CLOEXEC);
		FUZZ_CHECK(memfd >= 0, "memfd_create: %s", strerror(errno));
	}
	FUZZ_CHECK(ftruncate(memfd, 0) == 0, "ftruncate: %s", strerror(errno));
	FUZZ_CHECK(pwrite(memfd, data, size, 0) == (ssize_t)size, "pwrite: %s", strerror(errno));
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);

	_cleanup_json_ json_t *counts = json_object();
	int r = vm_inuse_scan_mountinfo(path, &where, counts);
	FUZZ_CHECK(r == 0 || r == -ENOENT, "vm_inuse_scan_mountinfo returned %d", r);
	if (r < 0) {
		FUZZ_CHECK(json_object_size(counts) == 0, "counts after a failure");
		return 0;
	}

	size_t lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n' || (where.layer_path && (data[i] == '=' || data[i] == ':'));
	json_int_t total = 0;
	const char *name;
	json_t *c;
	json_object_foreach(counts, name, c) {
		FUZZ_CHECK(!strchr(name, '/') && name[0] && strlen(name) <= VM_NAME_MAX,
			   "counted a mount of %s", fuzz_show(name));
		FUZZ_CHECK(vm_name_check("volume", name, NULL) == 0,
			   "counted a mount of \"%s\", which is not a volume name",
			   fuzz_show(name));
		FUZZ_CHECK(json_is_integer(c) && json_integer_value(c) >= 1, "count of %s",
			   fuzz_show(name));
		total += json_integer_value(c);
	}
	FUZZ_CHECK((size_t)total <= lines, "%lld mounts counted in %zu lines and layers", (long long)total,
		   lines);

	/* the same table again adds the same counts */
	_cleanup_json_ json_t *twice = json_deep_copy(counts);
	FUZZ_CHECK(twice, "out of memory");
	r = vm_inuse_scan_mountinfo(path, &where, twice);
	FUZZ_CHECK(r == 0, "the second scan returned %d", r);
	FUZZ_CHECK(json_object_size(twice) == json_object_size(counts), "second scan: other names");
	json_object_foreach(counts, name, c)
		FUZZ_CHECK(json_integer_value(json_object_get(twice, name)) ==
				   2 * json_integer_value(c),
			   "second scan: count of %s", fuzz_show(name));
	return 0;
}
