#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run a command under a seccomp filter that makes io_uring unavailable,
the way podman's default profile does inside a container.

usage: seccomp-deny.py CMD [ARG...]

io_uring_setup, io_uring_enter and io_uring_register fail with ENOSYS;
every other system call is allowed.  Only x86-64 (the filter checks the
architecture and refuses to guess another's numbers).
"""
import ctypes
import os
import platform
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
AUDIT_ARCH_X86_64 = 0xC000003E
ENOSYS = 38
# x86-64 numbers of io_uring_setup, io_uring_enter, io_uring_register.
DENIED = (425, 426, 427)

# Classic BPF opcodes.
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06


def insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


def program():
    ret_errno = SECCOMP_RET_ERRNO | ENOSYS
    prog = [
        insn(BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        insn(BPF_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        insn(BPF_RET_K, 0, 0, ret_errno),  # another ABI: refuse everything odd
        insn(BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    ]
    for i, nr in enumerate(DENIED):
        left = len(DENIED) - i - 1
        # match: jump over the remaining tests and the ALLOW to the ERRNO
        prog.append(insn(BPF_JEQ_K, left + 1, 0, nr))
    prog.append(insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    prog.append(insn(BPF_RET_K, 0, 0, ret_errno))
    return b"".join(prog), len(prog)


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    if platform.machine() != "x86_64":
        print("seccomp-deny.py: only x86_64 is supported", file=sys.stderr)
        return 77
    code, n = program()
    buf = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(n, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p,
                           ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        print(f"seccomp-deny.py: no_new_privs: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 1
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        print(f"seccomp-deny.py: seccomp: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 1
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
