/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Little-endian fields of btrfs items as the tree search ioctl hands them
 * out (unaligned, on-disk byte order), read without assuming alignment. */
#pragma once

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t vm_get_le64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline uint32_t vm_get_le32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint16_t vm_get_le16(const unsigned char *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}
