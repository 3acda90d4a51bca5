#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Delete trees with nested subvolumes while a job that still holds
directory fds inside them keeps exchanging directories with symlinks
to other volumes of the pool, and check after every delete that every
other subvolume of the pool is still there with its content.

usage: delete-race.py --pool POOL --rounds N --uid UID
                      (--volmgr VOLMGR | --tool TOOL [--tool-arg ARG]... --scratch DIR)
                      [--victim PATH]... [--max-left N]

Each round makes a tree: a volume (`VOLMGR create race-R`, deleted with
`VOLMGR rm race-R`) or a subvolume DIR/race-R (deleted with `TOOL
[ARG...] DIR race-R`).  In it, pairs of a directory d-K and a symlink
l-K; d-K holds a nested subvolume named like a victim (victim-a under
volumes/, inner inside volume victim-b, victim-c under caches/), l-K
points at the victim's parent: volumes/, volumes/victim-b, caches/ or
the pool itself, as an absolute path and as a relative one that is
right once the tree is in staging/ (or DIR).  More pairs inside a nested
subvolume n, and a read-only subvolume ro holding a subvolume.

The attacker opens the tree's top directory and n BEFORE the delete (a
job's open directory or cwd), drops to UID, then exchanges every d-K
with its l-K (renameat2 RENAME_EXCHANGE) through those fds only, in a
loop, until the delete has returned.

After each round: every subvolume the pool had at the start (btrfs
subvolume list: id and path) is still there, every --victim tree has
the same names, types, inode numbers and file contents as at the start,
and the tree is gone -- or, if the delete failed, it is still there
(in staging/ or DIR) and the delete said why on stderr.  At most
--max-left rounds may fail so.  Prints a JSON summary; exit 1 on any
failed check, 2 on bad usage.
"""
import argparse
import ctypes
import fcntl
import json
import mmap
import os
import select
import signal
import stat
import struct
import subprocess
import sys
import time

RENAME_EXCHANGE = 2
PR_SET_PDEATHSIG = 1


def _iow(nr, size):
    return (1 << 30) | (size << 16) | (0x94 << 8) | nr


def _iowr(nr, size):
    return (3 << 30) | (size << 16) | (0x94 << 8) | nr


# linux/btrfs.h: struct btrfs_ioctl_vol_args is 4096 bytes (s64 fd,
# char name[4088]); btrfs_ioctl_ino_lookup_args too (u64, u64, 4080).
BTRFS_IOC_SUBVOL_CREATE = _iow(14, 4096)
BTRFS_IOC_INO_LOOKUP = _iowr(18, 4096)
BTRFS_IOC_SUBVOL_SETFLAGS = _iow(26, 8)
BTRFS_SUBVOL_RDONLY = 1 << 1

libc = ctypes.CDLL(None, use_errno=True)
renameat2 = libc.renameat2
renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                      ctypes.c_uint]


def fail(msg):
    print(f"FAIL: delete-race: {msg}", file=sys.stderr)
    sys.exit(1)


def subvol_create(parent, name):
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fcntl.ioctl(fd, BTRFS_IOC_SUBVOL_CREATE,
                    bytearray(struct.pack("q4088s", 0, name.encode())))
    finally:
        os.close(fd)


def subvol_set_ro(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fcntl.ioctl(fd, BTRFS_IOC_SUBVOL_SETFLAGS, struct.pack("Q", BTRFS_SUBVOL_RDONLY))
    finally:
        os.close(fd)


def subvol_id(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        buf = bytearray(struct.pack("QQ4080s", 0, 256, b""))
        fcntl.ioctl(fd, BTRFS_IOC_INO_LOOKUP, buf)
    finally:
        os.close(fd)
    return struct.unpack_from("Q", buf)[0]


def subvolumes(pool):
    """{id: path} of every subvolume of the pool's file system."""
    out = subprocess.run(["btrfs", "subvolume", "list", pool], check=True,
                         capture_output=True, text=True).stdout
    subs = {}
    for line in out.splitlines():
        f = line.split()
        subs[int(f[1])] = line.split(" path ", 1)[1]
    return subs


def fingerprint(root):
    """Names, types, inode numbers and file contents under root (no
    symlink followed), plus root's subvolume id."""
    fp = [("", "subvol", subvol_id(root))]
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: fp.append(("error", str(e)))):
        dirnames.sort()
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    fp.append((rel, "f", st.st_ino, f.read()))
            elif stat.S_ISLNK(st.st_mode):
                fp.append((rel, "l", st.st_ino, os.readlink(p)))
            else:
                fp.append((rel, stat.S_IFMT(st.st_mode), st.st_ino))
    return fp


def pairs_spec(pool):
    """(directory inside the tree, key, symlink target, nested path)."""
    return [
        ("", "va", f"{pool}/volumes", "victim-a"),
        ("", "vr", "../../volumes", "victim-a"),
        ("", "ba", f"{pool}/volumes/victim-b", "inner"),
        ("", "br", "../../volumes/victim-b", "inner"),
        ("", "ca", f"{pool}/caches", "victim-c"),
        ("", "cr", "../../caches", "victim-c"),
        ("", "pa", pool, "volumes/victim-a"),
        ("", "pr", "../..", "volumes/victim-a"),
        ("n", "na", f"{pool}/volumes", "victim-a"),
        ("n", "nr", "../../../volumes", "victim-a"),
        ("n", "nb", "../../../volumes/victim-b", "inner"),
    ]


def build_tree(top, pool, uid):
    subvol_create(top, "n")
    for where, key, target, nested in pairs_spec(pool):
        base = os.path.join(top, where)
        d = os.path.join(base, f"d-{key}")
        os.mkdir(d)
        parent = d
        for comp in nested.split("/")[:-1]:
            parent = os.path.join(parent, comp)
            os.mkdir(parent)
        subvol_create(parent, nested.split("/")[-1])
        os.symlink(target, os.path.join(base, f"l-{key}"))
    subvol_create(top, "ro")
    subvol_create(os.path.join(top, "ro"), "c")
    for dirpath, dirnames, filenames in os.walk(top):
        os.lchown(dirpath, uid, uid)
        for n in filenames:  # the symlinks
            os.lchown(os.path.join(dirpath, n), uid, uid)
    subvol_set_ro(os.path.join(top, "ro"))


def attacker(top, pool, uid, shm, ready_w, max_s):
    """The job: fds opened now, privileges dropped, then exchanges
    through those fds only until SIGTERM."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    fds = {"": os.open(top, flags)}
    fds["n"] = os.open("n", flags, dir_fd=fds[""])
    pairs = [(fds[where], f"d-{key}".encode(), f"l-{key}".encode())
             for where, key, _, _ in pairs_spec(pool)]
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    n, loops, deadline = 0, 0, time.monotonic() + max_s
    while not stop:
        for fd, a, b in pairs:
            if renameat2(fd, a, fd, b, RENAME_EXCHANGE) == 0:
                n += 1
        loops += 1
        shm[0:8] = struct.pack("Q", n)
        if loops == 1:
            os.write(ready_w, b"r")
        if loops % 64 == 0 and time.monotonic() > deadline:
            break
    os._exit(0)


def seconds(xs):
    """min, median and max of xs, for the log (nothing is asserted)."""
    xs = sorted(xs)
    return [round(xs[0], 3), round(xs[len(xs) // 2], 3), round(xs[-1], 3)] if xs else []


def main(argv):
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--uid", type=int, required=True)
    ap.add_argument("--volmgr")
    ap.add_argument("--tool")
    ap.add_argument("--tool-arg", action="append", default=[])
    ap.add_argument("--scratch")
    ap.add_argument("--victim", action="append", default=[])
    ap.add_argument("--max-left", type=int, default=0)
    a = ap.parse_args(argv)
    if bool(a.volmgr) == bool(a.tool) or (a.tool and not a.scratch):
        ap.print_usage(sys.stderr)
        return 2
    pool = os.path.realpath(a.pool)
    base_subs = subvolumes(pool)
    base_fp = {v: fingerprint(v) for v in a.victim}
    deleted = left = exchanges = raced = 0
    messages = {}
    delete_s, round_s = [], []
    for rnd in range(a.rounds):
        t_round = time.monotonic()
        name = f"race-{rnd}"
        if a.volmgr:
            subprocess.run([a.volmgr, "create", name], check=True, stdout=subprocess.DEVNULL)
            top = f"{pool}/volumes/{name}"
        else:
            subvol_create(a.scratch, name)
            top = f"{a.scratch}/{name}"
        build_tree(top, pool, a.uid)
        shm = mmap.mmap(-1, 8)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready_r)
                attacker(top, pool, a.uid, shm, ready_w, 120)
            finally:
                os._exit(1)
        os.close(ready_w)
        if not select.select([ready_r], [], [], 60)[0] or os.read(ready_r, 1) != b"r":
            os.kill(pid, signal.SIGKILL)
            fail(f"round {rnd}: the attacker did not start")
        os.close(ready_r)
        before = struct.unpack("Q", shm[0:8])[0]
        if a.volmgr:
            cmd = [a.volmgr, "rm", name]
        else:
            cmd = [a.tool, *a.tool_arg, a.scratch, name]
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True)
        delete_s.append(time.monotonic() - t0)
        during = struct.unpack("Q", shm[0:8])[0] - before
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            fail(f"round {rnd}: the attacker exited with status {status:#x}")
        exchanges += during
        raced += during > 0

        # Every subvolume the pool had, at its path; every victim as it was.
        subs = subvolumes(pool)
        for sid, path in base_subs.items():
            if subs.get(sid) != path:
                fail(f"round {rnd}: subvolume {sid} ({path}) is "
                     f"{'gone' if sid not in subs else 'now at ' + subs[sid]} "
                     f"after `{' '.join(cmd)}` (exit {p.returncode}: {p.stderr.strip()})")
        for v, fp in base_fp.items():
            try:
                now = fingerprint(v)
            except OSError as e:
                now = [("error", str(e))]
            if now != fp:
                fail(f"round {rnd}: victim {v} changed after `{' '.join(cmd)}` "
                     f"(exit {p.returncode}: {p.stderr.strip()})")

        # The tree is gone, or left where it was and the failure said why.
        if a.volmgr:
            rest = [e for e in os.listdir(f"{pool}/staging") if e.startswith(f"trash-{name}-")]
            if os.path.lexists(top):
                rest.append(top)
        else:
            rest = [top] if os.path.lexists(top) else []
        if p.returncode == 0:
            if rest:
                fail(f"round {rnd}: `{' '.join(cmd)}` succeeded but left {rest}")
            deleted += 1
        else:
            if not rest:
                fail(f"round {rnd}: `{' '.join(cmd)}` failed ({p.stderr.strip()}) "
                     "but the tree is gone")
            if not p.stderr.strip():
                fail(f"round {rnd}: `{' '.join(cmd)}` failed without saying why")
            left += 1
            msg = p.stderr.strip()
            messages[msg] = messages.get(msg, 0) + 1
            print(f"# round {rnd}: left {rest}: {msg}", file=sys.stderr)
        round_s.append(time.monotonic() - t_round)
    print(json.dumps({"rounds": a.rounds, "deleted": deleted, "left": left,
                      "exchanges_during_deletes": exchanges,
                      "rounds_raced": raced, "left_messages": messages,
                      "delete_s": seconds(delete_s), "round_s": seconds(round_s)}))
    if left > a.max_left:
        fail(f"{left} of {a.rounds} deletes gave up (at most {a.max_left} may)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
