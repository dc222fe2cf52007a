"""A small seccomp-BPF filter, built by hand with ctypes: no new processes, no programs, no sockets but Unix ones.

Threads stay allowed (clone with CLONE_THREAD), so torch still works; fork, vfork, clone without CLONE_THREAD,
execve, ptrace, namespace and mount calls, io_uring and kernel-module calls fail with EPERM. This matters because
we run as root, where RLIMIT_NPROC does not apply. Only x86-64 syscall numbers are listed (the architecture this
was tested on); elsewhere ``install`` returns False and the other layers remain.
"""

from __future__ import annotations

import ctypes
import errno
import platform

_AUDIT_ARCH_X86_64 = 0xC000003E
_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_CLONE_THREAD = 0x00010000
_AF_UNIX = 1

# BPF opcodes
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_X32_SYSCALL_BIT = 0x40000000

_X86_64 = {
    "clone": 56, "clone3": 435, "socket": 41,
    "denied": {
        "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "ptrace": 101, "process_vm_readv": 310,
        "process_vm_writev": 311, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272,
        "setns": 308, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425,
        "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
        "reboot": 169, "swapon": 167, "swapoff": 168, "add_key": 248, "request_key": 249, "keyctl": 250,
        "open_by_handle_at": 304, "name_to_handle_at": 303, "fanotify_init": 300, "mount_setattr": 442,
        "fsopen": 430, "fsmount": 432, "move_mount": 429, "open_tree": 428,
    },
}


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def supported() -> bool:
    return platform.machine() in ("x86_64", "AMD64")


def _program() -> list[tuple[int, int, int, int]]:
    table = _X86_64
    deny = _SECCOMP_RET_ERRNO | errno.EPERM
    nr_offset, arch_offset, arg0_offset = 0, 4, 16  # struct seccomp_data (arg0's low 32 bits on little-endian)
    code: list[tuple[int, int, int, int]] = [
        (_LD_W_ABS, 0, 0, arch_offset),
        (_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),
        (_RET_K, 0, 0, _SECCOMP_RET_KILL_PROCESS),  # another ABI (x32 / i386 entry) could dodge the numbers
        (_LD_W_ABS, 0, 0, nr_offset),
        (_JGE_K, 0, 1, _X32_SYSCALL_BIT),  # the x32 ABI shares the architecture tag but numbers differently
        (_RET_K, 0, 0, deny),
    ]
    for number in sorted(table["denied"].values()):
        code += [(_JEQ_K, 0, 1, number), (_RET_K, 0, 0, deny)]
    # clone3 hides its flags in memory the filter cannot read: ENOSYS makes glibc fall back to clone
    code += [(_JEQ_K, 0, 1, table["clone3"]), (_RET_K, 0, 0, _SECCOMP_RET_ERRNO | errno.ENOSYS)]
    # clone: threads only
    code += [(_JEQ_K, 0, 4, table["clone"]), (_LD_W_ABS, 0, 0, arg0_offset), (_JSET_K, 1, 0, _CLONE_THREAD),
             (_RET_K, 0, 0, deny), (_RET_K, 0, 0, _SECCOMP_RET_ALLOW)]
    # socket: Unix domain only
    code += [(_JEQ_K, 0, 4, table["socket"]), (_LD_W_ABS, 0, 0, arg0_offset), (_JEQ_K, 1, 0, _AF_UNIX),
             (_RET_K, 0, 0, deny), (_RET_K, 0, 0, _SECCOMP_RET_ALLOW)]
    code.append((_RET_K, 0, 0, _SECCOMP_RET_ALLOW))
    return code


def install() -> bool:
    """Install the filter on this thread (and all it starts); False where unsupported. Irreversible."""
    if not supported():
        return False
    program = _program()
    filters = (_SockFilter * len(program))(*(_SockFilter(*instruction) for instruction in program))
    fprog = _SockFprog(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
    return True
