#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Keep exchanging pairs of names with renameat2(RENAME_EXCHANGE), the
CVE-2018-15664 pattern: a directory and a symlink out of the tree trade
places while somebody walks the tree.

usage: swap-loop.py COUNT_FILE MAX_SECONDS A1 B1 [A2 B2 ...]

Exchanges A1<->B1, A2<->B2, ... round robin until SIGTERM or MAX_SECONDS,
then writes the number of exchanges done to COUNT_FILE.  Both names of a
pair must be in one directory, which is opened once at the start: the
exchanges then happen in that directory whatever it is renamed to or
swapped with, and never through a symlink that is swapped in.
"""
import ctypes
import os
import signal
import sys
import time

RENAME_EXCHANGE = 2


def main(argv):
    if len(argv) < 4 or len(argv) % 2:
        print(__doc__, file=sys.stderr)
        return 2
    count_file, max_s = argv[0], float(argv[1])
    pairs = []
    for i in range(2, len(argv), 2):
        a, b = os.path.split(argv[i]), os.path.split(argv[i + 1])
        if a[0] != b[0]:
            print(f"swap-loop.py: {argv[i]} and {argv[i + 1]} are not in one directory",
                  file=sys.stderr)
            return 2
        fd = os.open(a[0], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        pairs.append((fd, a[1].encode(), b[1].encode()))
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = libc.renameat2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                          ctypes.c_char_p, ctypes.c_uint]
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    n, errors, loops = 0, 0, 0
    deadline = time.monotonic() + max_s
    while not stop:
        loops += 1
        for fd, a, b in pairs:
            if renameat2(fd, a, fd, b, RENAME_EXCHANGE) == 0:
                n += 1
            else:
                errors += 1
        if loops % 256 == 0 and time.monotonic() > deadline:
            break
    with open(count_file, "w") as f:
        f.write(f"{n} {errors}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
