#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Compare two directory trees the way a faithful copy must match.

usage: treecmp.py [--atime] [--no-xattrs] SRC DST

Checks every entry below SRC and DST (never following symlinks, never
descending into a mount point: a copy has an empty directory there)
for: type, content, holes (the data extents found with SEEK_DATA /
SEEK_HOLE: the copy may not hold much more data than the source), the
hard-link structure, symlink targets, device numbers, mode, owner, group,
the nanosecond mtime (and atime with --atime: only meaningful where the
source is mounted noatime, since reading it moves it), and extended
attributes including ACLs and security.capability (ignoring XFS's raw
trusted.SGI_ACL_* copies).  Prints each difference; exits 1 if any.
"""
import os
import re
import stat
import sys

# A copy's data may be rounded up to its file system's blocks or pages.
DATA_SLACK = 256 * 1024


def mount_points():
    """Every mount point of this mount namespace (bind mounts of a file
    system onto itself too, which st_dev cannot tell)."""
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            out.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mp))
    return out


def walk(root):
    """Relative path -> lstat, for everything below root on root's mount."""
    root_dev = os.lstat(root).st_dev
    mounts = mount_points()
    real_root = os.path.realpath(root)
    out = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel) if rel else root
        try:
            names = os.listdir(full)
        except OSError as e:
            out.setdefault("!errors", []).append(f"{full}: {e}")
            continue
        for name in names:
            r = os.path.join(rel, name) if rel else name
            st = os.lstat(os.path.join(root, r))
            out[r] = st
            if (stat.S_ISDIR(st.st_mode) and st.st_dev == root_dev
                    and os.path.join(real_root, r) not in mounts):
                stack.append(r)
    return out


def data_extents(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        size = os.fstat(fd).st_size
        ext, off = [], 0
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:  # ENXIO: a hole to the end
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            ext.append((start, min(end, size)))
            off = end
        return ext
    finally:
        os.close(fd)


def same_content(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def xattrs(path):
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for n in names:
        if n.startswith("trusted.SGI_ACL_"):
            continue
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError as e:
            out[n] = f"<unreadable: {e}>"
    return out


def kind(mode):
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"),
                       (stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISCHR, "chardev"), (stat.S_ISBLK, "blockdev"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "?"


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    opts = {a for a in argv if a.startswith("--")}
    if len(args) != 2 or opts - {"--atime", "--no-xattrs"}:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = args
    diffs = []

    def diff(rel, what):
        diffs.append(f"{rel or '.'}: {what}")

    s_tree, d_tree = walk(src), walk(dst)
    for t, name in ((s_tree, "source"), (d_tree, "copy")):
        for e in t.pop("!errors", []):
            diffs.append(f"cannot read the {name}: {e}")
    # Sockets are not copied (like cp): leave them out of the comparison.
    s_tree = {k: v for k, v in s_tree.items() if not stat.S_ISSOCK(v.st_mode)}
    for rel in sorted(set(s_tree) - set(d_tree)):
        diff(rel, "missing in the copy")
    for rel in sorted(set(d_tree) - set(s_tree)):
        diff(rel, "only in the copy")

    pairs = [("", os.lstat(src), os.lstat(dst))]
    pairs += [(r, s_tree[r], d_tree[r]) for r in sorted(set(s_tree) & set(d_tree))]
    for rel, s, d in pairs:
        sp, dp = os.path.join(src, rel), os.path.join(dst, rel)
        if kind(s.st_mode) != kind(d.st_mode):
            diff(rel, f"type {kind(s.st_mode)} became {kind(d.st_mode)}")
            continue
        if stat.S_IMODE(s.st_mode) != stat.S_IMODE(d.st_mode) and not stat.S_ISLNK(s.st_mode):
            diff(rel, f"mode {stat.S_IMODE(s.st_mode):o} became {stat.S_IMODE(d.st_mode):o}")
        if (s.st_uid, s.st_gid) != (d.st_uid, d.st_gid):
            diff(rel, f"owner {s.st_uid}:{s.st_gid} became {d.st_uid}:{d.st_gid}")
        if s.st_mtime_ns != d.st_mtime_ns:
            diff(rel, f"mtime {s.st_mtime_ns} became {d.st_mtime_ns}")
        if "--atime" in opts and s.st_atime_ns != d.st_atime_ns:
            diff(rel, f"atime {s.st_atime_ns} became {d.st_atime_ns}")
        if stat.S_ISREG(s.st_mode):
            if s.st_size != d.st_size:
                diff(rel, f"size {s.st_size} became {d.st_size}")
            elif not same_content(sp, dp):
                diff(rel, "content differs")
            se, de = data_extents(sp), data_extents(dp)
            sdata = sum(e - b for b, e in se)
            ddata = sum(e - b for b, e in de)
            if ddata > sdata + DATA_SLACK:
                diff(rel, f"holes filled: {sdata} bytes of data became {ddata}")
        elif stat.S_ISLNK(s.st_mode):
            if os.readlink(sp) != os.readlink(dp):
                diff(rel, f"link target {os.readlink(sp)!r} became {os.readlink(dp)!r}")
        elif stat.S_ISCHR(s.st_mode) or stat.S_ISBLK(s.st_mode):
            if s.st_rdev != d.st_rdev:
                diff(rel, f"device {s.st_rdev:#x} became {d.st_rdev:#x}")
        if "--no-xattrs" not in opts and (s.st_dev == os.lstat(src).st_dev or rel == ""):
            sx, dx = xattrs(sp), xattrs(dp)
            for n in sorted(set(sx) | set(dx)):
                if n not in dx:
                    diff(rel, f"xattr {n} missing")
                elif n not in sx:
                    diff(rel, f"xattr {n} only in the copy")
                elif sx[n] != dx[n]:
                    diff(rel, f"xattr {n} differs: {sx[n]!r} became {dx[n]!r}")

    # Hard links: names sharing an inode in the source share one in the copy.
    def groups(tree):
        by_ino = {}
        for rel, st in tree.items():
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                by_ino.setdefault((st.st_dev, st.st_ino), set()).add(rel)
        return {rel: frozenset(g) for g in by_ino.values() for rel in g}
    sg, dg = groups(s_tree), groups(d_tree)
    for rel in sorted(set(sg) | set(dg)):
        a, b = sg.get(rel, frozenset([rel])), dg.get(rel, frozenset([rel]))
        if a != b:
            diff(rel, f"hard links {sorted(a)} became {sorted(b)}")

    for line in diffs:
        print(line)
    if diffs:
        print(f"treecmp: {len(diffs)} difference(s) between {src} and {dst}", file=sys.stderr)
        return 1
    print(f"treecmp: {src} and {dst} match ({len(s_tree)} entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
