/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "sendstream.h"

/* Command and attribute numbers of the kernel's fs/btrfs/send.h. */
enum {
	C_SUBVOL = 1,
	C_SNAPSHOT = 2,
	C_MKNOD = 5,
	C_SET_XATTR = 13,
	C_CLONE = 16,
	C_END = 21,
	C_MAX_V1 = 22, /* UPDATE_EXTENT: the last command of version 1 */
};
enum {
	A_UUID = 1,
	A_MODE = 5,
	A_PATH = 15,
	A_PATH_TO = 16,
	A_CLONE_UUID = 20,
	A_XATTR_NAME = 13,
	A_CLONE_PATH = 22,
	A_MAX_V1 = 24, /* CLONE_LEN: the last attribute of version 1 */
};

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int vm_sendstream_header(struct vm_sendstream *s, const uint8_t *buf, struct vm_error *err)
{
	*s = (struct vm_sendstream){0};
	if (memcmp(buf, "btrfs-stream", 13) != 0)
		return vm_error_set(err, EINVAL, "not a btrfs send stream (no btrfs-stream magic)");
	s->version = le32(buf + 13);
	/* Version 2 adds encoded writes (compressed extents handed to a
	 * privileged ioctl as they are) and fallocate: `cache export`
	 * writes version 1, and nothing else is read. */
	if (s->version != 1)
		return vm_error_set(err, EINVAL, "btrfs send stream version %u: only version 1 is read",
				    s->version);
	return 0;
}

int vm_sendstream_cmd_header(struct vm_sendstream *s, const uint8_t *buf, uint32_t *ret_len,
			     struct vm_error *err)
{
	if (s->ended)
		return vm_error_set(err, EINVAL, "the stream goes on after its end command");
	uint32_t len = le32(buf);
	if (len > VM_SENDSTREAM_CMD_MAX)
		return vm_error_set(err, EINVAL, "a command of %u bytes in the stream: too long", len);
	*ret_len = len;
	return 0;
}

/* A command's attributes, each type at most once: btrfs receive keeps
 * the last of a repeated attribute, so a filter that read another copy
 * would check a value receive never uses. */
struct attrs {
	const uint8_t *data[A_MAX_V1 + 1];
	uint16_t len[A_MAX_V1 + 1];
};

static int parse_attrs(const uint8_t *body, uint32_t len, struct attrs *a, struct vm_error *err)
{
	*a = (struct attrs){0};
	uint32_t off = 0;
	while (off < len) {
		if (len - off < 4)
			return vm_error_set(err, EINVAL, "a command's attributes end in the middle");
		uint16_t t = le16(body + off), l = le16(body + off + 2);
		if (l > len - off - 4)
			return vm_error_set(err, EINVAL, "an attribute runs past its command");
		if (t == 0 || t > A_MAX_V1)
			return vm_error_set(err, EINVAL, "unknown attribute %u in the stream", t);
		if (a->data[t])
			return vm_error_set(err, EINVAL, "attribute %u twice in one command", t);
		a->data[t] = body + off + 4;
		a->len[t] = l;
		off += 4u + l;
	}
	return 0;
}

/* A path inside the received subvolume: relative, plain components, no
 * NUL; empty is the subvolume's top (its times, owner and mode are sent
 * so).  Receive resolves most paths under its chroot, but a clone's
 * source path from the pool's mount, opened before it: never "..". */
static bool path_ok(const uint8_t *p, uint16_t n)
{
	if (n == 0)
		return true;
	if (p[0] == '/' || memchr(p, '\0', n))
		return false;
	for (uint16_t i = 0; i < n;) {
		uint16_t j = i;
		while (j < n && p[j] != '/')
			j++;
		uint16_t c = j - i;
		if (c == 0 || (c == 1 && p[i] == '.') || (c == 2 && p[i] == '.' && p[i + 1] == '.'))
			return false;
		i = j + 1;
	}
	return true;
}

int vm_sendstream_cmd(struct vm_sendstream *s, const uint8_t *hdr, const uint8_t *body,
		      uint32_t len, struct vm_error *err)
{
	uint16_t cmd = le16(hdr + 4);
	s->commands++;
	if (cmd == 0 || cmd > C_MAX_V1)
		return vm_error_set(err, EINVAL, "unknown command %u in the stream", cmd);
	if (!s->subvol_seen && cmd != C_SUBVOL)
		return vm_error_set(err, EINVAL,
				    cmd == C_SNAPSHOT ? "an incremental stream (its subvolume is a snapshot of another): only whole subvolumes are imported"
						      : "the stream does not begin with a subvolume");
	struct attrs a;
	int r = parse_attrs(body, len, &a, err);
	if (r < 0)
		return r;
	static const uint16_t paths[] = {A_PATH, A_PATH_TO, A_CLONE_PATH};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (a.data[paths[i]] && cmd != C_SUBVOL && !path_ok(a.data[paths[i]], a.len[paths[i]]))
			return vm_error_set(err, EINVAL, "a path in the stream leaves its subvolume (\"..\" or absolute)");
	switch (cmd) {
	case C_SUBVOL: {
		const uint8_t *p = a.data[A_PATH];
		uint16_t n = a.len[A_PATH];
		if (s->subvol_seen)
			return vm_error_set(err, EINVAL, "a second subvolume in the stream");
		if (!a.data[A_UUID] || a.len[A_UUID] != 16)
			return vm_error_set(err, EINVAL, "the stream's subvolume has no UUID");
		if (!p || n == 0 || n >= sizeof(s->subvol) || !path_ok(p, n) || memchr(p, '/', n))
			return vm_error_set(err, EINVAL, "the stream's subvolume has a bad name");
		memcpy(s->uuid, a.data[A_UUID], 16);
		memcpy(s->subvol, p, n);
		s->subvol[n] = '\0';
		s->subvol_seen = true;
		return 0;
	}
	case C_SNAPSHOT:
		return vm_error_set(err, EINVAL, "a second subvolume in the stream");
	case C_CLONE:
		/* Extents shared inside the subvolume are sent as clones of
		 * itself; a clone of any other would read another cache. */
		if (!a.data[A_CLONE_UUID] || a.len[A_CLONE_UUID] != 16 ||
		    memcmp(a.data[A_CLONE_UUID], s->uuid, 16) != 0 || !a.data[A_CLONE_PATH])
			return vm_error_set(err, EINVAL,
					    "the stream clones data from another subvolume: refused");
		return 0;
	case C_MKNOD:
		/* Counted, never trusted: a mode that does not say. */
		if (!a.data[A_MODE] || a.len[A_MODE] != 8 || S_ISCHR(le32(a.data[A_MODE])) ||
		    S_ISBLK(le32(a.data[A_MODE])))
			s->devices++;
		return 0;
	case C_SET_XATTR: {
		/* File capabilities and trusted.* attributes (root's, which
		 * nothing in a job container can set) stay out of caches:
		 * the command is dropped. */
		const uint8_t *n = a.data[A_XATTR_NAME];
		uint16_t l = a.len[A_XATTR_NAME];
		if (!n)
			return vm_error_set(err, EINVAL, "an extended attribute without a name");
		if ((l >= 8 && memcmp(n, "trusted.", 8) == 0) ||
		    (l == 19 && memcmp(n, "security.capability", 19) == 0)) {
			s->dropped++;
			return 1;
		}
		return 0;
	}
	case C_END:
		s->ended = true;
		return 0;
	default:
		return 0;
	}
}
