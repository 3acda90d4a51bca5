/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A btrfs send stream checked command by command before `btrfs receive`
 * applies it (`volmgr cache import-stream`).  A stream is someone's file:
 * it must hold one whole subvolume and nothing that reaches outside it.
 * Refused: any magic or version but btrfs's version 1 (what `cache
 * export` writes; version 2 adds encoded writes and fallocate), a command
 * or attribute version 1 does not have, a command longer than
 * VM_SENDSTREAM_CMD_MAX, an attribute twice in one command (receive keeps
 * the last copy), a path that is absolute or has "..", an incremental
 * stream (SNAPSHOT: a snapshot of some subvolume of the pool found by
 * UUID), a CLONE from any subvolume but the one being received, a second
 * SUBVOL, anything after END, a stream that ends before END.  Device
 * nodes are counted (the import refuses them).
 *
 * The layout (the kernel's fs/btrfs/send.h): a 17-byte header,
 * "btrfs-stream\0" and a le32 version; then commands, each a 10-byte
 * header (le32 length of what follows, le16 command, le32 crc32c) and TLV
 * attributes (le16 type, le16 length, data), every one of which is read. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define VM_SENDSTREAM_HEADER 17
#define VM_SENDSTREAM_CMD_HEADER 10
/* The kernel's commands are at most 64 KiB (v1) or an encoded extent and
 * its header (v2, well under 1 MiB); anything longer is not its. */
#define VM_SENDSTREAM_CMD_MAX (4u << 20)

struct vm_sendstream {
	uint32_t version;
	bool subvol_seen, ended;
	uint8_t uuid[16]; /* the received subvolume's */
	char subvol[256]; /* its name */
	uint64_t commands;
	uint64_t devices; /* MKNOD of a character or block device */
	uint64_t dropped; /* SET_XATTR of a file capability or trusted.*, left out */
};

/* The stream's first VM_SENDSTREAM_HEADER bytes. */
int vm_sendstream_header(struct vm_sendstream *s, const uint8_t *buf, struct vm_error *err);
/* A command's header: ret_len gets the length of what follows. */
int vm_sendstream_cmd_header(struct vm_sendstream *s, const uint8_t *buf, uint32_t *ret_len,
			     struct vm_error *err);
/* The command whose header was just checked, and its attributes: 0 to
 * pass it on, 1 to leave it out (a file capability or a trusted.*
 * attribute), or a negative errno. */
int vm_sendstream_cmd(struct vm_sendstream *s, const uint8_t *hdr, const uint8_t *body,
		      uint32_t len, struct vm_error *err);
