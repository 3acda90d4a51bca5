#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A FUSE file system that never answers: it mounts itself at MOUNTPOINT,
answers the kernel's INIT, writes READY_FILE, and then reads every request
and answers none, until killed.  Whatever touches a file in it beyond the
mount's root -- a stat, an open -- waits for as long as the mount lives
(the stall a hung FUSE daemon or a dead network share gives).  The test
ends the wait by aborting the connection (/sys/fs/fuse/connections/N/abort)
before it unmounts.

usage: fuse-stall.py MOUNTPOINT READY_FILE
"""
import ctypes
import os
import struct
import sys

FUSE_INIT = 26
IN_HEADER = struct.Struct("<IIQQIIIHH")   # len opcode unique nodeid uid gid pid extlen pad
OUT_HEADER = struct.Struct("<IiQ")        # len error unique
MS_NOSUID, MS_NODEV = 2, 4


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    mountpoint, ready = argv
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    libc = ctypes.CDLL(None, use_errno=True)
    opts = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
    if libc.mount(b"vt-fuse-stall", mountpoint.encode(), b"fuse", MS_NOSUID | MS_NODEV, opts) != 0:
        e = ctypes.get_errno()
        print(f"fuse-stall.py: mount: {os.strerror(e)}", file=sys.stderr)
        return 1
    while True:
        req = os.read(fd, 1 << 20)
        length, opcode, unique = IN_HEADER.unpack_from(req)[:3]
        if opcode != FUSE_INIT:
            continue  # never answered
        major, minor = struct.unpack_from("<II", req, IN_HEADER.size)
        # fuse_init_out (64 bytes from 7.23 on): major, minor,
        # max_readahead, flags, max_background, congestion_threshold,
        # max_write, time_gran, max_pages, map_alignment, flags2, unused[7]
        body = struct.pack("<IIIIHHIIHHI7I", 7, min(minor, 31), 0, 0, 16, 12, 4096, 1,
                           1, 0, 0, *([0] * 7))
        os.write(fd, OUT_HEADER.pack(OUT_HEADER.size + len(body), 0, unique) + body)
        with open(ready, "w") as f:
            f.write(f"{os.getpid()}\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
