#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The source layout's rules, checked on the built objects.

volmgr/lib/ is built in layers (volmgr/lib/meson.build): a layer may call
into the layers listed before it and never into one listed after.  The
include paths already refuse an upward #include; this checks what was
linked, function by function, from the symbol tables (nm):

  1. no object of a layer refers to a symbol defined in a higher layer;
  2. no circle of calls between source files anywhere: not inside a
     layer (the copy engine, the manager), not inside a front end;
  3. the library never refers to a symbol defined by a front end
     (volmgrd, volmgr, volmgr-pool);
  4. the protocol modules (proto) reach the manager only through the ops
     tables the daemon hands them: no call from proto into manager, so
     each protocol is a pure function tested with fixtures.

What nm cannot see is not checked: a static inline function of a header
(the *_done helpers of lib/manager/volinfo.h and results.h, which the
protocols use to free what the manager answered) is compiled into its
caller.  The CLI's own copies of four base files (volmgr/cli/meson.build)
are meson's hidden objects (.._lib_base_*.c.o), left out here: they are
lib/base's sources, checked as lib/base.

With --dot it prints the dependency graph of the folders (the README's
"Source layout" is drawn from it) instead of checking.

usage: layering.py BUILD_DIR LAYER... [--dot]
"""
import collections
import glob
import os
import subprocess
import sys

FRONT_ENDS = {
    'daemon': 'volmgr/daemon/volmgrd.p',
    'cli': 'volmgr/cli/volmgr.p',
    'pool-helper': 'volmgr/pool-helper/volmgr-pool.p',
}


def symbols(path):
    """(defined, undefined) global symbols of an object or archive member."""
    out = subprocess.run(['nm', '--defined-only', '-g', path], capture_output=True,
                         text=True, check=True).stdout
    defined = {line.split()[-1] for line in out.splitlines()
               if len(line.split()) == 3}
    out = subprocess.run(['nm', '--undefined-only', '-g', path], capture_output=True,
                         text=True, check=True).stdout
    undefined = {line.split()[-1] for line in out.splitlines() if line.strip()}
    return defined, undefined


def module_name(obj):
    # meson names objects after the source's path below the target's
    # folder: "copy_copy-uring.c.o" for lib/copy/copy-uring.c.
    base = os.path.basename(obj)
    return base[:-len('.c.o')] if base.endswith('.c.o') else base


def load(build, layers):
    """module -> (folder, rank, defined, undefined)."""
    mods = {}
    for rank, layer in enumerate(layers):
        objs = glob.glob(os.path.join(build, 'volmgr/lib', 'libvolmgr-%s.a.p' % layer, '*.o'))
        if not objs:
            sys.exit('layering: no objects for layer %s under %s (not built?)' % (layer, build))
        for o in objs:
            d, u = symbols(o)
            mods['lib/' + module_name(o).replace('_', '/', 1)] = (layer, rank, d, u)
    for fe, rel in FRONT_ENDS.items():
        objs = glob.glob(os.path.join(build, rel, '*.o'))
        if not objs:
            sys.exit('layering: no objects for %s under %s (not built?)' % (fe, build))
        for o in objs:
            d, u = symbols(o)
            mods[fe + '/' + module_name(o)] = (fe, len(layers), d, u)
    return mods


def graph(mods):
    owner = {}
    for m, (_, _, d, _) in mods.items():
        for s in d:
            # A front end's own definition of a library symbol (none
            # today) must not shadow the library's.
            if s not in owner or owner[s].startswith('lib/'):
                owner.setdefault(s, m)
    edges = collections.defaultdict(dict)
    for m, (_, _, _, u) in mods.items():
        for s in u:
            t = owner.get(s)
            if t and t != m:
                edges[m].setdefault(t, s)
    return edges


def cycles(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(sorted(scc))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    args = [a for a in sys.argv[1:] if a != '--dot']
    if len(args) < 2:
        sys.exit(__doc__)
    build, layers = args[0], args[1:]
    mods = load(build, layers)
    edges = graph(mods)

    if '--dot' in sys.argv:
        folders = collections.defaultdict(collections.Counter)
        for m, ts in edges.items():
            for t in ts:
                a, b = mods[m][0], mods[t][0]
                if a != b:
                    folders[a][b] += 1
        print('digraph volmgr {')
        for a in sorted(folders):
            for b, n in sorted(folders[a].items()):
                print('  "%s" -> "%s"; // %d' % (a, b, n))
        print('}')
        return 0

    failures = []
    for m, ts in sorted(edges.items()):
        for t, sym in sorted(ts.items()):
            (fa, ra, _, _), (fb, rb, _, _) = mods[m], mods[t]
            if m.startswith('lib/') and not t.startswith('lib/'):
                failures.append('%s calls %s of front end %s' % (m, sym, fb))
            elif fa == 'proto' and fb == 'manager':
                failures.append('%s calls %s of %s: the protocols reach the manager '
                                'through their ops' % (m, sym, t))
            elif m.startswith('lib/') and rb > ra:
                failures.append('%s (layer %s) calls %s of %s (layer %s, above it)'
                                % (m, fa, sym, t, fb))
    for scc in cycles(mods.keys(), edges):
        ring = ' -> '.join(scc)
        detail = '; '.join('%s->%s (%s)' % (a, b, edges[a][b])
                           for a in scc for b in scc if b in edges.get(a, {}))
        failures.append('circle: %s [%s]' % (ring, detail))
    n_edges = sum(len(t) for t in edges.values())
    print('layering: %d source files, %d calling edges between them, %d layers'
          % (len(mods), n_edges, len(layers)))
    for f in failures:
        print('FAIL ' + f)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
