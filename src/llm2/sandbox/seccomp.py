"""The system-call allow-list, built with libseccomp (through ``pyseccomp``): whatever is not listed fails.

Default action: EPERM. Another ABI than the native one (i386 or x32 on x86-64, arm32 on aarch64) kills the
process: its numbers differ, so it could dodge the list. What is allowed is what CPython, PyTorch's CPU training
and the channel's pipe use — no more:

- files: open, read, write, stat, seek, directory listing, rename, unlink, mkdir, truncate (Landlock decides
  where); descriptors (dup, fcntl, close), pipes, poll/epoll/eventfd; a short list of ioctl requests (terminal
  attributes and window size for isatty, FIONREAD, FIONBIO, FIOCLEX/FIONCLEX);
- memory: mmap, munmap, mprotect, mremap, madvise, brk, the NUMA queries oneDNN makes;
- threads: clone only with CLONE_THREAD and no namespace flag; futex, robust lists, rseq, scheduling queries,
  sched_setaffinity and prlimit64 on the caller only;
- signals: handlers, masks, kill of a pid above 0 and tgkill (the PID namespace and Landlock bound whom they
  reach); timers, clocks, sleeping; identity queries; uname, sysinfo, getrandom; prctl only for a thread's name,
  the dumpable and capability-bounding queries and naming memory areas; exit.

Absent, so refused: new processes (fork, vfork, clone without CLONE_THREAD; clone3 answers ENOSYS so that glibc
falls back to clone), exec, every socket call (the channel is a pipe), SysV IPC (shmget, semget, msgget, ...),
memfd_create, setsid/setpgid, mknod(at), symlink(at), link(at), chmod/chown/utime and extended attributes (Landlock
does not govern them), ptrace and process_vm_*, mount and the new mount API, unshare/setns, bpf, perf,
io_uring, userfaultfd, keyrings, modules, clocks and every other kernel interface.

Where the binding or libseccomp is missing, or the architecture has no table in it, ``install`` raises
SeccompUnavailable: the caller fails closed.
"""

from __future__ import annotations

import ctypes
import errno
import platform
from dataclasses import dataclass
from typing import Any

_CLONE_THREAD = 0x00010000
# namespace flags clone must not carry, even with CLONE_THREAD (the kernel refuses most such mixes anyway)
_CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

ALLOWED = (
    # files and descriptors (where: Landlock)
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
    "open", "openat", "openat2", "close", "close_range", "lseek", "stat", "fstat", "lstat", "newfstatat", "statx",
    "statfs", "fstatfs", "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64",
    "getcwd", "chdir", "fchdir", "dup", "dup2", "dup3", "fcntl", "flock", "fsync", "fdatasync", "ftruncate",
    "truncate", "rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir", "umask",
    "fadvise64", "fallocate", "sendfile", "copy_file_range",
    "pipe", "pipe2", "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
    # memory
    "mmap", "munmap", "mprotect", "mremap", "madvise", "brk", "mincore", "msync", "get_mempolicy",
    "membarrier",
    # threads and scheduling
    "futex", "futex_waitv", "set_robust_list", "set_tid_address", "rseq", "sched_yield", "sched_getaffinity",
    "sched_getparam", "sched_getscheduler", "sched_getattr", "sched_get_priority_max", "sched_get_priority_min",
    "getpriority", "getcpu", "arch_prctl",
    # signals, timers and clocks
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend", "rt_sigtimedwait",
    "sigaltstack", "tgkill", "tkill", "pause", "alarm", "getitimer", "setitimer", "timer_create", "timer_settime",
    "timer_gettime", "timer_getoverrun", "timer_delete", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time", "restart_syscall",
    # what a process may ask about itself
    "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid",
    "getgroups", "getpgrp", "getpgid", "getsid", "getrlimit", "getrusage", "times", "capget", "uname", "sysinfo",
    "getrandom", "ioprio_get",
    # ending
    "exit", "exit_group", "wait4", "waitid",
)

# ioctl requests allowed (the second argument): TCGETS, TIOCGWINSZ, TIOCGPGRP (isatty and terminal size
# queries), FIONREAD, FIONBIO, FIONCLEX, FIOCLEX
ALLOWED_IOCTL = (0x5401, 0x5413, 0x540F, 0x541B, 0x5421, 0x5450, 0x5451)
# ioctl requests refused even in the CUDA profile, which otherwise allows ioctl (its driver's requests are many):
# TIOCSTI and TIOCLINUX push input into a terminal the process may still hold
DENIED_IOCTL = (0x5412, 0x541C)
# prctl options allowed: PR_GET_DUMPABLE, PR_SET_NAME, PR_GET_NAME, PR_CAPBSET_READ, PR_GET_NO_NEW_PRIVS,
# PR_GET_THP_DISABLE, PR_SET_VMA (glibc names its anonymous mappings)
ALLOWED_PRCTL = (3, 15, 16, 23, 39, 42, 0x53564D41)
ONLY_ON_SELF = ("prlimit64", "sched_setaffinity")  # first argument a pid: allowed only for 0, the caller

DENY_ERRNO = errno.EPERM
NO_SUCH_CALL = "clone3"  # answers ENOSYS: glibc then falls back to clone, whose flags the filter can read


class SeccompUnavailable(OSError):
    """No filter could be installed; the message says why."""


@dataclass(frozen=True)
class FilterSpec:
    """What a filter allows beyond ALLOWED: any ioctl but the terminal-injecting ones (the CUDA profile)."""

    any_ioctl: bool = False


def binding() -> Any:
    """The ``pyseccomp`` module over the system's libseccomp; SeccompUnavailable where either is missing."""
    try:
        import pyseccomp
    except ImportError as exc:
        raise SeccompUnavailable(errno.ENOSYS, "the libseccomp binding (pyseccomp) is not installed") from exc
    except (OSError, RuntimeError) as exc:  # the binding loads libseccomp.so.2 when imported
        raise SeccompUnavailable(errno.ENOSYS, f"libseccomp could not be loaded: {exc}") from exc
    # the binding leaves the argument types unset: an architecture's tag (above 2**31) must pass as unsigned
    resolve = pyseccomp._libseccomp.seccomp_syscall_resolve_name_arch
    resolve.argtypes, resolve.restype = (ctypes.c_uint32, ctypes.c_char_p), ctypes.c_int
    return pyseccomp


def available() -> bool:
    """Whether the binding and libseccomp load here."""
    try:
        binding()
    except SeccompUnavailable:
        return False
    return True


def build(spec: FilterSpec = FilterSpec(), arch: int | None = None) -> Any:
    """The filter (a libseccomp context, not yet loaded) for the native architecture, or ``arch``."""
    sc = binding()
    native = sc.system_arch()
    arch = native if arch is None else arch
    try:
        flt = sc.SyscallFilter(sc.ERRNO(DENY_ERRNO))
        flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
        if arch != native:
            flt.add_arch(arch)
            flt.remove_arch(native)
        for name in ALLOWED:
            _rule(sc, flt, arch, sc.ALLOW, name)
        _rule(sc, flt, arch, sc.ERRNO(errno.ENOSYS), NO_SUCH_CALL)
        _rule(sc, flt, arch, sc.ALLOW, "clone",
              sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD | _CLONE_NAMESPACES, _CLONE_THREAD))
        # kill only a pid above 0, on its low 32 bits (the kernel's pid_t): sign bit clear and some other bit set,
        # one rule per bit, since libseccomp compares each argument once per rule
        for bit in range(31):
            _rule(sc, flt, arch, sc.ALLOW, "kill", sc.Arg(0, sc.MASKED_EQ, 0x80000000 | 1 << bit, 1 << bit))
        for name in ONLY_ON_SELF:
            _rule(sc, flt, arch, sc.ALLOW, name, sc.Arg(0, sc.EQ, 0))
        for option in ALLOWED_PRCTL:
            _rule(sc, flt, arch, sc.ALLOW, "prctl", sc.Arg(0, sc.EQ, option))
        if spec.any_ioctl:
            for request in DENIED_IOCTL:
                _rule(sc, flt, arch, sc.ERRNO(DENY_ERRNO), "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
            _rule(sc, flt, arch, sc.ALLOW, "ioctl")
        else:
            for request in ALLOWED_IOCTL:  # the kernel reads the request as 32 bits: compare only those
                _rule(sc, flt, arch, sc.ALLOW, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    except OSError as exc:
        raise SeccompUnavailable(exc.errno or errno.EINVAL, f"libseccomp refused the filter: {exc}") from None
    return flt


def _rule(sc: Any, flt: Any, arch: int, action: int, name: str, *args: Any) -> None:
    number = sc.resolve_syscall(arch, name)
    if number == -1:  # __NR_SCMP_ERROR: a name libseccomp does not know at all
        raise SeccompUnavailable(errno.EINVAL, f"libseccomp does not know the system call {name!r}")
    if number >= 0:  # a negative pseudo-number: this architecture lacks the call (aarch64 has no open, fork, ...)
        # by name: libseccomp reads a number as the native architecture's and translates it for the filter's
        flt.add_rule(action, sc.resolve_syscall(0, name), *args)


def install(spec: FilterSpec = FilterSpec()) -> str:
    """Install the filter on this thread and all it starts; returns the architecture's name. Irreversible.

    Raises SeccompUnavailable where the binding, libseccomp or a filter for this architecture is missing, or the
    kernel refuses the filter.
    """
    flt = build(spec)
    try:
        flt.load()  # sets no_new_privs first, as the kernel requires of an unprivileged process
    except OSError as exc:
        raise SeccompUnavailable(exc.errno or errno.EINVAL, f"the kernel refused the filter: {exc}") from None
    return platform.machine()
