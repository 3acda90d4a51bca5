#!/usr/bin/env python3
"""Run a program under the kernel-side restrictions of a systemd service unit.

    sandbox-run.py [--openat2=allow|eperm|enosys] [--probe] UNIT -- PROGRAM [ARG...]

There is no systemd as PID 1 on the test machine, so this applies what
UNIT's [Service] section asks of the kernel itself, then execs PROGRAM
(same pid):

  CapabilityBoundingSet=    every other capability is dropped from the
                            bounding set (and the ambient set cleared), so
                            root keeps exactly these across execve
  NoNewPrivileges=yes       PR_SET_NO_NEW_PRIVS
  PrivateNetwork=yes        a new, empty network namespace
  SystemCallFilter=         the allow list, with ~ lines taken out of it,
  SystemCallErrorNumber=    groups expanded by `systemd-analyze
                            syscall-filter` (so the test follows systemd's
                            own definition of @system-service and friends)
  RestrictAddressFamilies=  socket() of any other family: EAFNOSUPPORT
  RestrictNamespaces=yes    unshare/setns/clone with CLONE_NEW*: EPERM,
                            clone3: ENOSYS (as systemd does)
  MemoryDenyWriteExecute=   mmap(W|X), mprotect/pkey_mprotect(X): EPERM
  LockPersonality=yes       personality() changes: EPERM

Each is one seccomp filter, as systemd installs them; the kernel applies
the strictest answer.  --openat2 additionally makes openat2() fail (as on
an old kernel, ENOSYS, or a filter that refuses unknown calls, EPERM);
RestrictSUIDSGID=yes would imply ENOSYS (systemd cannot filter
openat2's mode).

Not emulated: the mount namespace options (ProtectSystem=, PrivateTmp=,
ProtectProc=, ...), DevicePolicy=, IPAddressDeny=.  The seccomp library is
libseccomp.so.2 through ctypes (a dependency of systemd and apt, so present
wherever systemd-analyze is; no -dev package, nothing to compile).

--probe: print what was applied, as KEY=VALUE lines, on stderr.
"""
import ctypes
import errno
import os
import subprocess
import sys

# ------------------------------------------------------------- the unit


def parse_service(path):
    """[Service] assignments in order: {key: [value, ...]}; an empty
    assignment resets the list, as systemd does."""
    out, section = {}, None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section != "[Service]" or "=" not in line:
                continue
            k, v = line.split("=", 1)
            k, v = k.strip(), v.strip()
            if v == "":
                out[k] = []
            else:
                out.setdefault(k, []).append(v)
    return out


def yes(s, key):
    v = s.get(key, ["no"])[-1].lower()
    return v in ("yes", "true", "1", "on")


def syscall_groups():
    text = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"],
                          capture_output=True, text=True, check=True).stdout
    groups, cur = {}, None
    for line in text.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), [])
        elif line.startswith(" ") and cur is not None:
            item = line.strip()
            if item and not item.startswith("#"):
                cur.append(item)
        else:
            cur = None
    return groups


def expand(items, groups, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for it in items:
        if it.startswith("@"):
            if it in seen:
                continue
            seen.add(it)
            if it not in groups:
                sys.exit(f"sandbox-run: unknown syscall group {it}")
            out |= expand(groups[it], groups, seen)
        else:
            out.add(it)
    return out


def syscall_filter(s, groups):
    """(allow set or None, errno) per systemd: the first line decides allow
    or deny list; later lines add to or take from it."""
    allow, deny_mode = None, False
    for v in s.get("SystemCallFilter", []):
        neg = v.startswith("~")
        names = expand(v.lstrip("~").split(), groups)
        if allow is None:
            deny_mode = neg
            allow = set() if neg else set(expand(["@default"], groups))
        if neg != deny_mode:
            allow -= names
        else:
            allow |= names
    if allow is None or deny_mode:
        return None, None  # only the allow-list form is emulated
    en = s.get("SystemCallErrorNumber", [None])[-1]
    return allow, (getattr(errno, en) if en else None)


# ------------------------------------------------------------ libseccomp

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000


def SCMP_ACT_ERRNO(e):
    return 0x00050000 | (e & 0xFFFF)


SCMP_CMP_NE, SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ = 1, 4, 7


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


sc = ctypes.CDLL("libseccomp.so.2", use_errno=True)
sc.seccomp_init.restype = ctypes.c_void_p
sc.seccomp_init.argtypes = [ctypes.c_uint32]
sc.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                      ctypes.c_uint, ctypes.POINTER(ArgCmp)]
sc.seccomp_load.argtypes = [ctypes.c_void_p]
sc.seccomp_release.argtypes = [ctypes.c_void_p]
sc.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
sc.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
SCMP_FLTATR_CTL_NNP = 3

libc = ctypes.CDLL(None, use_errno=True)


def nr(name):
    n = sc.seccomp_syscall_resolve_name(name.encode())
    return n if n >= 0 else None  # unknown, or not on this architecture


class Filter:
    def __init__(self, default):
        self.default = default
        self.ctx = sc.seccomp_init(default)
        if not self.ctx:
            sys.exit("sandbox-run: seccomp_init failed")
        # NoNewPrivileges= is applied (or not) separately, as in the unit.
        sc.seccomp_attr_set(self.ctx, SCMP_FLTATR_CTL_NNP, 0)

    def rule(self, action, name, *cmps):
        n = nr(name)
        if n is None:
            return False
        if action == self.default and not cmps:
            return True  # libseccomp refuses a rule that repeats the default
        arr = (ArgCmp * max(1, len(cmps)))(*[ArgCmp(*c) for c in cmps])
        r = sc.seccomp_rule_add_array(self.ctx, action, n, len(cmps), arr)
        if r < 0 and r != -errno.EEXIST:
            sys.exit(f"sandbox-run: rule for {name}: {os.strerror(-r)}")
        return True

    def load(self):
        r = sc.seccomp_load(self.ctx)
        if r < 0:
            sys.exit(f"sandbox-run: seccomp_load: {os.strerror(-r)}")
        sc.seccomp_release(self.ctx)


# ------------------------------------------------------------ the rest

CAP_NAMES = ["chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill",
             "setgid", "setuid", "setpcap", "linux_immutable", "net_bind_service",
             "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner", "sys_module",
             "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot",
             "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease",
             "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
             "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
             "checkpoint_restore"]
PR_CAPBSET_READ, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 23, 24, 38, 47, 4
CLONE_NEWNET = 0x40000000
CLONE_NEW_ALL = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080
AF_FAMILIES = {"AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16,
               "AF_PACKET": 17}
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000


def main():
    args = sys.argv[1:]
    openat2, probe = "allow", False
    while args and args[0].startswith("--") and args[0] != "--":
        a = args.pop(0)
        if a.startswith("--openat2="):
            openat2 = a.split("=", 1)[1]
            if openat2 not in ("allow", "eperm", "enosys"):
                sys.exit(__doc__)
        elif a == "--probe":
            probe = True
        else:
            sys.exit(__doc__)
    if len(args) < 3 or args[1] != "--":
        sys.exit(__doc__)
    unit, prog = args[0], args[2:]
    s = parse_service(unit)
    report = {}

    # Capabilities: keep exactly the bounding set the unit names.
    keep = None
    if "CapabilityBoundingSet" in s:
        keep = set()
        for v in s["CapabilityBoundingSet"]:
            if v.startswith("~"):
                sys.exit("sandbox-run: only the allow form of CapabilityBoundingSet= is emulated")
            keep |= {c.lower().removeprefix("cap_") for c in v.split()}
        unknown = keep - set(CAP_NAMES)
        if unknown:
            sys.exit(f"sandbox-run: unknown capabilities {sorted(unknown)}")
        # The kernel's last capability: where PR_CAPBSET_READ says EINVAL
        # (/proc/sys/kernel/cap_last_cap may be hidden: ProcSubset=pid).
        last = 0
        while libc.prctl(PR_CAPBSET_READ, last + 1, 0, 0, 0) >= 0:
            last += 1
        for i in range(last + 1):
            name = CAP_NAMES[i] if i < len(CAP_NAMES) else None
            if name not in keep and libc.prctl(PR_CAPBSET_DROP, i, 0, 0, 0) != 0:
                sys.exit(f"sandbox-run: cannot drop capability {i}: "
                         f"{os.strerror(ctypes.get_errno())}")
        libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        report["caps"] = " ".join(sorted(keep))

    if yes(s, "PrivateNetwork"):
        if libc.unshare(CLONE_NEWNET) != 0:
            sys.exit(f"sandbox-run: unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}")
        report["netns"] = "private"

    if yes(s, "NoNewPrivileges"):
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        report["nnp"] = "1"

    # The permissive filters first: the allow list might not allow
    # seccomp() itself.
    if s.get("RestrictAddressFamilies"):
        fams = set()
        for v in s["RestrictAddressFamilies"]:
            if v.startswith("~") or v == "none":
                sys.exit("sandbox-run: only the allow form of RestrictAddressFamilies= is emulated")
            for fam in v.split():
                if fam not in AF_FAMILIES:
                    sys.exit(f"sandbox-run: unknown address family {fam}")
                fams.add(AF_FAMILIES[fam])
        f = Filter(SCMP_ACT_ALLOW)
        for fam in range(0, 64):
            if fam not in fams:
                f.rule(SCMP_ACT_ERRNO(errno.EAFNOSUPPORT), "socket", (0, SCMP_CMP_EQ, fam, 0))
        f.load()
        report["families"] = " ".join(str(x) for x in sorted(fams))

    if yes(s, "RestrictNamespaces"):
        f = Filter(SCMP_ACT_ALLOW)
        f.rule(SCMP_ACT_ERRNO(errno.EPERM), "unshare")
        f.rule(SCMP_ACT_ERRNO(errno.EPERM), "setns")
        for bit in range(32):
            if CLONE_NEW_ALL & (1 << bit):
                f.rule(SCMP_ACT_ERRNO(errno.EPERM), "clone",
                       (0, SCMP_CMP_MASKED_EQ, 1 << bit, 1 << bit))
        f.rule(SCMP_ACT_ERRNO(errno.ENOSYS), "clone3")
        f.load()
        report["namespaces"] = "restricted"

    if yes(s, "MemoryDenyWriteExecute"):
        f = Filter(SCMP_ACT_ALLOW)
        f.rule(SCMP_ACT_ERRNO(errno.EPERM), "mmap",
               (2, SCMP_CMP_MASKED_EQ, PROT_WRITE | PROT_EXEC, PROT_WRITE | PROT_EXEC))
        f.rule(SCMP_ACT_ERRNO(errno.EPERM), "mprotect", (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        f.rule(SCMP_ACT_ERRNO(errno.EPERM), "pkey_mprotect",
               (2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC))
        f.rule(SCMP_ACT_ERRNO(errno.EPERM), "shmat", (2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
        f.load()
        report["mdwe"] = "1"

    if yes(s, "LockPersonality"):
        cur = libc.personality(0xFFFFFFFF)
        f = Filter(SCMP_ACT_ALLOW)
        f.rule(SCMP_ACT_ERRNO(errno.EPERM), "personality", (0, SCMP_CMP_NE, cur, 0))
        f.load()
        report["personality"] = "locked"

    allow, en = syscall_filter(s, syscall_groups())
    if allow is not None or openat2 != "allow":
        default = SCMP_ACT_ALLOW if allow is None else (
            SCMP_ACT_ERRNO(en) if en is not None else SCMP_ACT_KILL_PROCESS)
        f = Filter(default)
        if openat2 != "allow":
            f.rule(SCMP_ACT_ERRNO(errno.EPERM if openat2 == "eperm" else errno.ENOSYS), "openat2")
        n = 0
        for name in sorted(allow or ()):
            if name == "openat2" and openat2 != "allow":
                continue
            if f.rule(SCMP_ACT_ALLOW, name):
                n += 1
        f.load()
        report["syscalls_allowed"] = str(n) if allow is not None else "all"
        report["openat2"] = openat2

    if probe:
        for k, v in report.items():
            print(f"sandbox-run: {k}={v}", file=sys.stderr)
    try:
        os.execv(prog[0], prog)
    except OSError as e:
        sys.exit(f"sandbox-run: cannot run {prog[0]}: {e.strerror}")


main()
