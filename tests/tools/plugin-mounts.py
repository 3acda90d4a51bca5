#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Send COUNT VolumeDriver.Mount (or Unmount) requests for volume NAME with
the IDs PREFIX-0 .. PREFIX-(COUNT-1), as an engine that never unmounts
would, over one keep-alive connection to the plugin socket.

usage: plugin-mounts.py SOCKET NAME COUNT PREFIX [Mount|Unmount]

Prints one JSON object: {"ok": N, "refused": N, "first_refusal": "..."}.
"""
import json
import socket
import sys


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    sock, name, count, prefix = argv[0], argv[1], int(argv[2]), argv[3]
    op = argv[4] if len(argv) == 5 else "Mount"
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(sock)
    f = s.makefile("rb")
    ok = refused = 0
    first = ""
    for i in range(count):
        body = json.dumps({"Name": name, "ID": f"{prefix}-{i}"}).encode()
        s.sendall(b"POST /VolumeDriver.%s HTTP/1.1\r\nHost: plugin\r\nContent-Length: %d\r\n\r\n"
                  % (op.encode(), len(body)) + body)
        status = int(f.readline().split(b" ", 2)[1])
        length = 0
        while True:
            line = f.readline().strip()
            if not line:
                break
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        reply = json.loads(f.read(length))
        if status == 200:
            ok += 1
        else:
            refused += 1
            first = first or reply.get("Err", "")
    print(json.dumps({"ok": ok, "refused": refused, "first_refusal": first}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
