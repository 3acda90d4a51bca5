#!/usr/bin/env python3
# TEMPORARY minimal stand-in (backends branch) for the copy engine's
# tests/tools/treecmp.py, with the same interface: `treecmp.py A B` exits 0
# when the trees are equal, 1 and prints the differences otherwise.  Drop
# this file when the engine's version is merged.
#
# Compared, without following symlinks: the set of names, type, mode,
# owner, group, size, content, symlink target, device numbers,
# nanosecond mtime (not of symlinks), extended attributes, and which
# names are hard links to one another.  The top directories' own
# attributes too; atime and ctime are not compared.
import os
import stat
import sys


def walk(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        rel = os.path.relpath(dirpath, root)
        out[rel] = os.lstat(dirpath)
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[os.path.normpath(os.path.join(rel, n))] = os.lstat(p)
    return out


def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in sorted(names)}


def same_content(a, b):
    with open(a, 'rb') as fa, open(b, 'rb') as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def link_groups(tree):
    groups = {}
    for rel, st in tree.items():
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            groups.setdefault((st.st_dev, st.st_ino), []).append(rel)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def main():
    if len(sys.argv) != 3:
        print('usage: treecmp.py A B', file=sys.stderr)
        return 2
    a, b = sys.argv[1], sys.argv[2]
    ta, tb = walk(a), walk(b)
    diffs = []
    for rel in sorted(set(ta) | set(tb)):
        if rel not in tb:
            diffs.append(f'{rel}: only in {a}')
            continue
        if rel not in ta:
            diffs.append(f'{rel}: only in {b}')
            continue
        sa, sb = ta[rel], tb[rel]
        pa, pb = os.path.join(a, rel), os.path.join(b, rel)
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            diffs.append(f'{rel}: type differs')
            continue
        for what, x, y in (('mode', stat.S_IMODE(sa.st_mode), stat.S_IMODE(sb.st_mode)),
                           ('uid', sa.st_uid, sb.st_uid), ('gid', sa.st_gid, sb.st_gid)):
            if x != y and not (what == 'mode' and stat.S_ISLNK(sa.st_mode)):
                diffs.append(f'{rel}: {what} {x:o} != {y:o}' if what == 'mode'
                             else f'{rel}: {what} {x} != {y}')
        if not stat.S_ISLNK(sa.st_mode) and sa.st_mtime_ns != sb.st_mtime_ns:
            diffs.append(f'{rel}: mtime {sa.st_mtime_ns} != {sb.st_mtime_ns}')
        if stat.S_ISREG(sa.st_mode):
            if sa.st_size != sb.st_size:
                diffs.append(f'{rel}: size {sa.st_size} != {sb.st_size}')
            elif not same_content(pa, pb):
                diffs.append(f'{rel}: content differs')
        elif stat.S_ISLNK(sa.st_mode):
            if os.readlink(pa) != os.readlink(pb):
                diffs.append(f'{rel}: link target differs')
        elif stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode):
            if sa.st_rdev != sb.st_rdev:
                diffs.append(f'{rel}: device differs')
        if xattrs(pa) != xattrs(pb):
            diffs.append(f'{rel}: xattrs differ: {sorted(xattrs(pa))} != {sorted(xattrs(pb))}')
    if link_groups(ta) != link_groups(tb):
        diffs.append(f'hard links differ: {link_groups(ta)} != {link_groups(tb)}')
    for d in diffs:
        print(d)
    return 1 if diffs else 0


if __name__ == '__main__':
    sys.exit(main())
