"""Landlock (Linux ≥ 5.13) through raw syscalls: confine a process's file access, TCP and signals for good.

After ``restrict`` the calling thread (and every thread it starts) may read only beneath ``read_paths``, write only
beneath ``write_paths``, and, as far as the kernel's ABI version allows, make no TCP connection or bind (ABI ≥ 4),
signal no process outside its own domain and reach no abstract Unix socket outside it (ABI ≥ 6). Nothing can lift
the restriction. ``restrict`` raises LandlockUnavailable where the kernel has no Landlock or refuses it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from dataclasses import dataclass

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # the same on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# file-system rights, by the ABI version that introduced them
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_WRITE_TREE = sum(1 << bit for bit in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
TREE_RIGHTS = {"remove_dir": 1 << 4, "remove_file": 1 << 5, "make_char": 1 << 6, "make_dir": 1 << 7,
               "make_reg": 1 << 8, "make_sock": 1 << 9, "make_fifo": 1 << 10, "make_block": 1 << 11,
               "make_sym": 1 << 12}
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1

_READ = _EXECUTE | _READ_FILE | _READ_DIR
_FILE_ONLY = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV  # the rights a rule on a file may hold


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class LandlockUnavailable(OSError):
    """Landlock is missing, disabled or refused the ruleset; the message says which."""


@dataclass(frozen=True)
class LandlockResult:
    abi: int
    features: tuple[str, ...]  # "files" always; "tcp" from ABI 4; "signals" and "abstract_unix_sockets" from ABI 6


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is absent or disabled."""
    version = _libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def features(abi: int) -> tuple[str, ...]:
    """What a ruleset enforces at this ABI version."""
    names = ["files"] if abi >= 1 else []
    if abi >= 4:
        names.append("tcp")
    if abi >= 6:
        names += ["signals", "abstract_unix_sockets"]
    return tuple(names)


def _handled_fs(abi: int) -> int:
    rights = _READ | _WRITE_FILE | _WRITE_TREE
    if abi >= 2:
        rights |= _REFER
    if abi >= 3:
        rights |= _TRUNCATE
    if abi >= 5:
        rights |= _IOCTL_DEV
    return rights


def failure_text(call: str, number: int) -> str:
    """The reason a system call that set errno to ``number`` failed: "CALL failed: ENAME (strerror)"; the other
    layers use it too."""
    return f"{call} failed: {errno.errorcode.get(number, number)} ({os.strerror(number)})"


def _failure(call: str) -> LandlockUnavailable:
    number = ctypes.get_errno()
    return LandlockUnavailable(number, failure_text(call, number))


def restrict(read_paths: list[str], write_paths: list[str],
             refused_write_rights: tuple[str, ...] = ()) -> LandlockResult:
    """Confine this thread and those it starts; returns the ABI and what it enforces. Irreversible.

    ``refused_write_rights`` (names in TREE_RIGHTS): what the write paths do not get though the ruleset handles it,
    so nowhere may it be done (e.g. "make_sym": no symbolic link anywhere)."""
    abi = abi_version()
    if abi < 1:
        raise LandlockUnavailable(errno.ENOSYS, "the kernel has no Landlock (not built in, or not enabled at boot)")
    handled = _handled_fs(abi)
    attr = _RulesetAttr(handled, (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0,
                        (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = _libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise _failure("landlock_create_ruleset")
    try:
        for path in read_paths:
            _allow(ruleset, path, _READ)
        writable = handled & ~sum(TREE_RIGHTS[name] for name in refused_write_rights)
        for path in write_paths:
            _allow(ruleset, path, writable)
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _failure("prctl(PR_SET_NO_NEW_PRIVS)")
        if _libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise _failure("landlock_restrict_self")
    finally:
        os.close(ruleset)
    return LandlockResult(abi, features(abi))


def _allow(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(os.path.realpath(path), os.O_PATH | os.O_CLOEXEC)  # the rule is on what the path names
    except OSError:
        return  # a path that does not exist (or cannot be reached) needs no rule: it stays denied
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FILE_ONLY
        rule = _PathBeneathAttr(rights, fd)
        if _libc.syscall(_SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                         ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            raise _failure(f"landlock_add_rule({path})")
    finally:
        os.close(fd)
