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
	C_CLONE = 16,
	C_END = 21,
	C_MAX_V2 = 26, /* ENABLE_VERITY, the last command of version 3 */
};
enum {
	A_UUID = 1,
	A_MODE = 5,
	A_PATH = 15,
	A_CLONE_UUID = 20,
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
	if (s->version != 1 && s->version != 2)
		return vm_error_set(err, EINVAL, "btrfs send stream version %u: only 1 and 2 are read",
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

/* Find attribute type in a command's TLVs: its data and length.  A
 * version 2 WRITE or ENCODED_WRITE ends in a DATA attribute without a
 * length; the commands read here have none. */
static int find_attr(const uint8_t *body, uint32_t len, uint16_t type, const uint8_t **ret,
		     uint16_t *ret_len)
{
	uint32_t off = 0;
	while (off + 4 <= len) {
		uint16_t t = le16(body + off), l = le16(body + off + 2);
		if (l > len - off - 4)
			return -EBADMSG;
		if (t == type) {
			*ret = body + off + 4;
			*ret_len = l;
			return 0;
		}
		off += 4u + l;
	}
	return off == len ? -ENOENT : -EBADMSG;
}

int vm_sendstream_cmd(struct vm_sendstream *s, const uint8_t *hdr, const uint8_t *body,
		      uint32_t len, struct vm_error *err)
{
	uint16_t cmd = le16(hdr + 4);
	const uint8_t *a;
	uint16_t alen;
	s->commands++;
	if (cmd == 0 || cmd > C_MAX_V2)
		return vm_error_set(err, EINVAL, "unknown command %u in the stream", cmd);
	if (!s->subvol_seen && cmd != C_SUBVOL)
		return vm_error_set(err, EINVAL,
				    cmd == C_SNAPSHOT ? "an incremental stream (its subvolume is a snapshot of another): only whole subvolumes are imported"
						      : "the stream does not begin with a subvolume");
	switch (cmd) {
	case C_SUBVOL:
		if (s->subvol_seen)
			return vm_error_set(err, EINVAL, "a second subvolume in the stream");
		if (find_attr(body, len, A_UUID, &a, &alen) < 0 || alen != 16)
			return vm_error_set(err, EINVAL, "the stream's subvolume has no UUID");
		memcpy(s->uuid, a, 16);
		if (find_attr(body, len, A_PATH, &a, &alen) < 0 || alen == 0 ||
		    alen >= sizeof(s->subvol) || memchr(a, '/', alen) || memchr(a, '\0', alen) ||
		    (alen == 1 && a[0] == '.') || (alen == 2 && a[0] == '.' && a[1] == '.'))
			return vm_error_set(err, EINVAL, "the stream's subvolume has a bad name");
		memcpy(s->subvol, a, alen);
		s->subvol[alen] = '\0';
		s->subvol_seen = true;
		return 0;
	case C_SNAPSHOT:
		return vm_error_set(err, EINVAL, "a second subvolume in the stream");
	case C_CLONE:
		/* Extents shared inside the subvolume are sent as clones of
		 * itself; a clone of any other would read another cache. */
		if (find_attr(body, len, A_CLONE_UUID, &a, &alen) < 0 || alen != 16 ||
		    memcmp(a, s->uuid, 16) != 0)
			return vm_error_set(err, EINVAL,
					    "the stream clones data from another subvolume: refused");
		return 0;
	case C_MKNOD:
		if (find_attr(body, len, A_MODE, &a, &alen) == 0 && alen == 8) {
			uint32_t mode = le32(a);
			if (S_ISCHR(mode) || S_ISBLK(mode))
				s->devices++;
		} else {
			s->devices++; /* unreadable: counted, never trusted */
		}
		return 0;
	case C_END:
		s->ended = true;
		return 0;
	default:
		return 0;
	}
}
