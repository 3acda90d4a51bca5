/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The btrfs send stream checks of `cache import-stream` (sendstream.h),
 * walked over the input as volmgrd's filter walks a caller's stream.
 *
 * Input: a btrfs stream (its 17-byte header, then commands).
 *
 * Checks:
 *  - a refusal sets an error message and is final (the walk stops);
 *  - nothing is accepted before one SUBVOL, whose name is one plain
 *    component, and nothing after END;
 *  - an accepted CLONE names the received subvolume's UUID;
 *  - an accepted command holds each attribute type once, and only
 *    version 1's (btrfs receive keeps the last of a repeated one);
 *  - only version 1 streams pass;
 *  - a command longer than VM_SENDSTREAM_CMD_MAX never passes. */
#include <errno.h>

#include "fuzz.h"

#include "sendstream.h"

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Each TLV type at most once, 1..24 (version 1's), lengths in bounds. */
static bool attrs_once(const uint8_t *b, uint32_t len)
{
	uint32_t seen = 0, off = 0;
	while (off < len) {
		if (len - off < 4)
			return false;
		unsigned t = (unsigned)(b[off] | b[off + 1] << 8), l = (unsigned)(b[off + 2] | b[off + 3] << 8);
		if (t == 0 || t > 24 || (seen & (1u << t)) || l > len - off - 4)
			return false;
		seen |= 1u << t;
		off += 4 + l;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm_sendstream s;
	struct vm_error err = {0};
	if (size < VM_SENDSTREAM_HEADER)
		return 0;
	if (vm_sendstream_header(&s, data, &err) < 0) {
		FUZZ_CHECK(err.msg[0] && err.code == EINVAL, "header refused without a message");
		return 0;
	}
	FUZZ_CHECK(s.version == 1, "version %u accepted", s.version);
	size_t off = VM_SENDSTREAM_HEADER;
	bool ended = false;
	while (off + VM_SENDSTREAM_CMD_HEADER <= size) {
		const uint8_t *hdr = data + off;
		uint32_t len;
		struct vm_error e = {0};
		if (vm_sendstream_cmd_header(&s, hdr, &len, &e) < 0) {
			FUZZ_CHECK(e.msg[0], "command header refused without a message");
			FUZZ_CHECK(ended || rd32(hdr) > VM_SENDSTREAM_CMD_MAX, "a command refused for no reason");
			return 0;
		}
		FUZZ_CHECK(!ended, "a command accepted after END");
		FUZZ_CHECK(len <= VM_SENDSTREAM_CMD_MAX, "a command of %u bytes passed", len);
		if (len > size - off - VM_SENDSTREAM_CMD_HEADER)
			return 0; /* cut short: the filter's read fails */
		uint16_t cmd = (uint16_t)(hdr[4] | hdr[5] << 8);
		bool had_subvol = s.subvol_seen;
		uint8_t uuid[16];
		memcpy(uuid, s.uuid, 16);
		if (vm_sendstream_cmd(&s, hdr, hdr + VM_SENDSTREAM_CMD_HEADER, len, &e) < 0) {
			FUZZ_CHECK(e.msg[0], "command %u refused without a message", cmd);
			return 0;
		}
		FUZZ_CHECK(s.subvol_seen, "command %u accepted before a subvolume", cmd);
		FUZZ_CHECK(attrs_once(hdr + VM_SENDSTREAM_CMD_HEADER, len), "command %u: an attribute twice, or one of another version", cmd);
		if (cmd == 1) {
			FUZZ_CHECK(!had_subvol, "a second subvolume accepted");
			FUZZ_CHECK(s.subvol[0] && !strchr(s.subvol, '/') && strcmp(s.subvol, ".") &&
				   strcmp(s.subvol, ".."), "subvolume name %s", fuzz_show(s.subvol));
		} else {
			FUZZ_CHECK(memcmp(uuid, s.uuid, 16) == 0, "the subvolume's UUID changed");
		}
		FUZZ_CHECK(cmd != 2, "a snapshot accepted");
		ended = s.ended;
		off += VM_SENDSTREAM_CMD_HEADER + len;
	}
	return 0;
}
