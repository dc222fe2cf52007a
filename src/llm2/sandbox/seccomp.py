"""A seccomp-BPF filter, built by hand with ctypes: no new processes or programs, no sockets, no reach into others.

What fails with EPERM (threads stay allowed, so torch still works):

- new processes and programs: fork, vfork, clone without CLONE_THREAD, execve(at); clone3 answers ENOSYS, because
  its flags sit in memory the filter cannot read, and glibc then falls back to clone;
- acting on other processes: ptrace, process_vm_*, pidfd_*, kcmp, queued signals, kill of a process group or of
  every process (pid <= 0), prlimit64 and sched_setaffinity on any pid but 0 (the caller), setpriority,
  sched_setscheduler/param/attr, ioprio_set, migrate_pages, move_pages, process_madvise;
- every socket call that creates or connects one (socket, socketpair, connect, bind, listen, accept): the channel
  to the worker is a pipe;
- identity changes (set*uid, set*gid, setgroups) and prctl options that would undo the sandbox (parent-death
  signal, dumpable, ptracer, securebits, ambient capabilities, subreaper, mm); pushing input into a terminal
  (ioctl TIOCSTI, TIOCLINUX);
- namespaces, mounts, BPF, perf, userfaultfd, io_uring, kexec and modules, keyrings, clocks, accounting and other
  kernel interfaces a loss function never needs.

Two syscall tables: x86-64 and the generic table (aarch64). Elsewhere ``install`` raises: the caller fails closed.
A system call made through another ABI (i386 or x32 on x86-64, arm32 on aarch64) kills the process: its numbers
differ, so it could dodge the list.
"""

from __future__ import annotations

import ctypes
import errno
import platform
from dataclasses import dataclass

_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_CLONE_THREAD = 0x00010000
_X32_SYSCALL_BIT = 0x40000000

# BPF opcodes
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

# struct seccomp_data: nr, arch, instruction pointer, then six 64-bit arguments (low 32 bits first: little-endian)
_NR_OFFSET, _ARCH_OFFSET, _ARG0_OFFSET, _ARG1_OFFSET = 0, 4, 16, 24

DENY = _SECCOMP_RET_ERRNO | errno.EPERM
ALLOW = _SECCOMP_RET_ALLOW
KILL = _SECCOMP_RET_KILL_PROCESS
NO_SUCH_CALL = _SECCOMP_RET_ERRNO | errno.ENOSYS

DENIED = (
    # new processes and programs
    "fork", "vfork", "execve", "execveat",
    # other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_open", "pidfd_getfd", "pidfd_send_signal",
    "process_madvise", "process_mrelease", "kcmp", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "setpriority",
    "sched_setscheduler", "sched_setparam", "sched_setattr", "ioprio_set", "migrate_pages", "move_pages",
    "get_robust_list",
    # sockets
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    # identity
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups",
    # namespaces and mounts
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "fsopen", "fsconfig",
    "fsmount", "fspick", "move_mount", "open_tree", "open_tree_attr",
    # kernel interfaces
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "add_key",
    "request_key", "keyctl", "open_by_handle_at", "name_to_handle_at", "fanotify_init", "acct", "quotactl",
    "quotactl_fd", "syslog", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
    "setdomainname", "iopl", "ioperm", "uselib", "personality", "vhangup", "modify_ldt",
)
ONLY_ON_SELF = ("prlimit64", "sched_setaffinity")  # first argument a pid: allowed only for 0, the caller

# ioctl requests that push input into a terminal the process still holds (its output may be one): TIOCSTI, TIOCLINUX
DENIED_IOCTL = (0x5412, 0x541C)

# prctl options that would undo a layer: PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_SET_SECUREBITS,
# PR_SET_MM, PR_SET_CHILD_SUBREAPER, PR_CAP_AMBIENT, PR_SET_IO_FLUSHER, PR_SET_PTRACER
DENIED_PRCTL = (1, 4, 8, 28, 35, 36, 47, 57, 0x59616D61)


@dataclass(frozen=True)
class SyscallTable:
    machine: str
    audit_arch: int  # AUDIT_ARCH_* as struct seccomp_data reports it
    numbers: dict[str, int]  # every syscall the filter names; a name absent here does not exist on this ABI
    x32_bit: bool = False  # x86-64 only: the x32 ABI shares the architecture tag but sets this bit


_X86_64 = SyscallTable("x86_64", 0xC000003E, {
    "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "ptrace": 101, "process_vm_readv": 310,
    "process_vm_writev": 311, "pidfd_open": 434, "pidfd_getfd": 438, "pidfd_send_signal": 424,
    "process_madvise": 440, "process_mrelease": 448, "kcmp": 312, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
    "setpriority": 141, "sched_setscheduler": 144, "sched_setparam": 142, "sched_setattr": 314, "ioprio_set": 251,
    "migrate_pages": 256, "move_pages": 279, "get_robust_list": 274, "socket": 41, "socketpair": 53, "connect": 42,
    "bind": 49, "listen": 50, "accept": 43, "accept4": 288, "setuid": 105, "setgid": 106, "setreuid": 113,
    "setregid": 114, "setresuid": 117, "setresgid": 119, "setfsuid": 122, "setfsgid": 123, "setgroups": 116,
    "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
    "mount_setattr": 442, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "move_mount": 429,
    "open_tree": 428, "open_tree_attr": 467, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "kexec_load": 246,
    "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176, "reboot": 169,
    "swapon": 167, "swapoff": 168, "add_key": 248, "request_key": 249, "keyctl": 250, "open_by_handle_at": 304,
    "name_to_handle_at": 303, "fanotify_init": 300, "acct": 163, "quotactl": 179, "quotactl_fd": 443, "syslog": 103,
    "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159, "sethostname": 170,
    "setdomainname": 171, "iopl": 172, "ioperm": 173, "uselib": 134, "personality": 135, "vhangup": 153,
    "modify_ldt": 154, "clone": 56, "clone3": 435, "kill": 62, "prlimit64": 302, "sched_setaffinity": 203,
    "prctl": 157, "ioctl": 16,
}, x32_bit=True)

# the generic table (include/uapi/asm-generic/unistd.h), which aarch64 uses; it has no fork, vfork, iopl, ...
_AARCH64 = SyscallTable("aarch64", 0xC00000B7, {
    "execve": 221, "execveat": 281, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
    "pidfd_open": 434, "pidfd_getfd": 438, "pidfd_send_signal": 424, "process_madvise": 440,
    "process_mrelease": 448, "kcmp": 272, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240, "setpriority": 140,
    "sched_setscheduler": 119, "sched_setparam": 118, "sched_setattr": 274, "ioprio_set": 30, "migrate_pages": 238,
    "move_pages": 239, "get_robust_list": 100, "socket": 198, "socketpair": 199, "connect": 203, "bind": 200,
    "listen": 201, "accept": 202, "accept4": 242, "setuid": 146, "setgid": 144, "setreuid": 145, "setregid": 143,
    "setresuid": 147, "setresgid": 149, "setfsuid": 151, "setfsgid": 152, "setgroups": 159, "unshare": 97,
    "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "mount_setattr": 442, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "move_mount": 429, "open_tree": 428, "open_tree_attr": 467,
    "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
    "delete_module": 106, "reboot": 142, "swapon": 224, "swapoff": 225, "add_key": 217, "request_key": 218,
    "keyctl": 219, "open_by_handle_at": 265, "name_to_handle_at": 264, "fanotify_init": 262, "acct": 89,
    "quotactl": 60, "quotactl_fd": 443, "syslog": 116, "settimeofday": 170, "clock_settime": 112,
    "clock_adjtime": 266, "adjtimex": 171, "sethostname": 161, "setdomainname": 162, "personality": 92,
    "vhangup": 58, "clone": 220, "clone3": 435, "kill": 129, "prlimit64": 261, "sched_setaffinity": 122,
    "prctl": 167, "ioctl": 29,
})

TABLES = {"x86_64": _X86_64, "amd64": _X86_64, "aarch64": _AARCH64, "arm64": _AARCH64}


class SeccompUnavailable(OSError):
    """No filter could be installed; the message says why."""


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


Instruction = tuple[int, int, int, int]  # (code, jump if true, jump if false, constant)


def table_for(machine: str | None = None) -> SyscallTable | None:
    """The syscall table for ``machine`` (default: this one), or None where llm2 has no filter."""
    return TABLES.get((machine or platform.machine()).lower())


def _ret(value: int) -> Instruction:
    return (_RET_K, 0, 0, value)


def _when(number: int, body: list[Instruction]) -> list[Instruction]:
    """Run ``body`` (which always returns) for syscall ``number``; other syscalls skip it."""
    return [(_JEQ_K, 0, len(body), number)] + body


def _arg0_is_zero() -> list[Instruction]:
    return [(_LD_W_ABS, 0, 0, _ARG0_OFFSET), (_JEQ_K, 1, 0, 0), _ret(DENY), _ret(ALLOW)]


def _kill_body() -> list[Instruction]:
    """kill(pid <= 0) signals a process group or every process the caller may signal: denied."""
    return [(_LD_W_ABS, 0, 0, _ARG0_OFFSET), (_JEQ_K, 1, 0, 0), (_JSET_K, 0, 1, 0x80000000), _ret(DENY),
            _ret(ALLOW)]


def _clone_body() -> list[Instruction]:
    return [(_LD_W_ABS, 0, 0, _ARG0_OFFSET), (_JSET_K, 1, 0, _CLONE_THREAD), _ret(DENY), _ret(ALLOW)]


def _deny_values(offset: int, values: tuple[int, ...]) -> list[Instruction]:
    """Deny when the argument at ``offset`` (its low 32 bits) is one of ``values``; allow otherwise."""
    body: list[Instruction] = [(_LD_W_ABS, 0, 0, offset)]
    for value in values:
        body += [(_JEQ_K, 0, 1, value), _ret(DENY)]
    return body + [_ret(ALLOW)]


def program(table: SyscallTable) -> list[Instruction]:
    """The BPF program for one syscall table (every branch ends in a return)."""
    numbers = table.numbers
    code: list[Instruction] = [(_LD_W_ABS, 0, 0, _ARCH_OFFSET), (_JEQ_K, 1, 0, table.audit_arch), _ret(KILL),
                               (_LD_W_ABS, 0, 0, _NR_OFFSET)]
    if table.x32_bit:
        code += [(_JGE_K, 0, 1, _X32_SYSCALL_BIT), _ret(KILL)]
    for number in sorted(numbers[name] for name in DENIED if name in numbers):
        code += _when(number, [_ret(DENY)])
    for name in ONLY_ON_SELF:
        code += _when(numbers[name], _arg0_is_zero())
    code += _when(numbers["clone3"], [_ret(NO_SUCH_CALL)])
    code += _when(numbers["clone"], _clone_body())
    code += _when(numbers["kill"], _kill_body())
    code += _when(numbers["prctl"], _deny_values(_ARG0_OFFSET, DENIED_PRCTL))
    code += _when(numbers["ioctl"], _deny_values(_ARG1_OFFSET, DENIED_IOCTL))
    return code + [_ret(ALLOW)]


def install(machine: str | None = None) -> str:
    """Install the filter on this thread and all it starts; returns the table's name. Irreversible.

    Raises SeccompUnavailable where there is no table for this architecture or the kernel refuses the filter.
    """
    machine = machine or platform.machine()
    table = table_for(machine)
    if table is None:
        raise SeccompUnavailable(errno.ENOSYS, f"no filter for this architecture ({machine})")
    code = program(table)
    filters = (_SockFilter * len(code))(*(_SockFilter(*instruction) for instruction in code))
    fprog = _SockFprog(len(code), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        number = ctypes.get_errno()
        raise SeccompUnavailable(number, f"prctl(PR_SET_NO_NEW_PRIVS) failed: {errno.errorcode.get(number, number)}")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        number = ctypes.get_errno()
        raise SeccompUnavailable(number, f"the kernel refused the filter: {errno.errorcode.get(number, number)}")
    return table.machine
