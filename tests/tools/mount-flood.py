#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fill this process's mount namespace with about COUNT mounts, write the
number to READY_FILE, and sleep until killed: what any local user can do
in a user namespace of its own (`unshare -Urm`), up to the kernel's
fs.mount-max (100,000 by default).  Run it in a private mount namespace.

Few system calls make many mounts: DIR becomes a shared tmpfs, and each
bind of DIR onto a new directory inside itself copies every mount in it
(mount propagation), doubling the count; recursive binds of the smaller
generations into a private tmpfs then add the rest.

usage: mount-flood.py DIR COUNT READY_FILE
"""
import ctypes
import os
import signal
import sys

MS_BIND, MS_REC, MS_PRIVATE, MS_SHARED = 4096, 16384, 1 << 18, 1 << 20


def mounts():
    with open("/proc/self/mountinfo", "rb") as f:
        return f.read().count(b"\n")


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    base, want, ready = argv[0], int(argv[1]), argv[2]
    libc = ctypes.CDLL(None, use_errno=True)

    def mount(src, dst, fstype, flags):
        if libc.mount(src and src.encode(), dst.encode(), fstype and fstype.encode(), flags,
                      None) != 0:
            raise OSError(ctypes.get_errno(), f"mount {src} {dst}")

    os.makedirs(base, exist_ok=True)
    mount("vt-flood", base, "tmpfs", 0)
    mount(None, base, None, MS_SHARED)
    gen = 0
    while mounts() * 2 <= want:
        d = f"{base}/d{gen}"
        os.mkdir(d)
        mount(base, d, None, MS_BIND)
        gen += 1
    priv = f"{base}-private"
    os.makedirs(priv, exist_ok=True)
    mount("vt-flood", priv, "tmpfs", 0)
    mount(None, priv, None, MS_PRIVATE)
    for g in range(gen - 1, -1, -1):
        # generation g holds about 2^g mounts: add it if it still fits
        if mounts() + (1 << g) > want:
            continue
        d = f"{priv}/r{g}"
        os.mkdir(d)
        try:
            mount(f"{base}/d{g}", d, None, MS_BIND | MS_REC)
        except OSError:
            break  # fs.mount-max reached: enough
    with open(ready, "w") as f:
        f.write(f"{mounts()}\n")
    signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
