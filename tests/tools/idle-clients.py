#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hold COUNT idle connections to one of volmgrd's sockets -- connect and
say nothing, as a stuck client would -- and keep writing to STATE_FILE
how many of them the server has closed: "OPEN CLOSED" (one line, the
file replaced each time), until SIGTERM.

usage: idle-clients.py SOCKET control|plugin COUNT STATE_FILE
"""
import os
import select
import signal
import socket
import sys
import time


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    path, kind, count, state = argv[0], argv[1], int(argv[2]), argv[3]
    stype = socket.SOCK_SEQPACKET if kind == "control" else socket.SOCK_STREAM
    conns = []
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, stype)
        s.connect(path)
        conns.append(s)
        time.sleep(0.01)  # an order: the first ones are the longest idle
    closed = set()
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    while not stop:
        for i, s in enumerate(conns):
            if i in closed:
                continue
            r, _, _ = select.select([s], [], [], 0)
            if r:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    closed.add(i)
        tmp = state + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{count} {len(closed)} {','.join(map(str, sorted(closed)))}\n")
        os.replace(tmp, state)
        time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
