"""The identity layers: an unprivileged user (as root: uid and gid 65534, no groups) and no capabilities at all."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from llm2.sandbox.layers import Refused, errno_refusal

UNPRIVILEGED_ID = 65534  # nobody / nogroup: owns no file outside the scratch directory

_PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAPABILITY_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")

_libc = ctypes.CDLL(None, use_errno=True)


def become_unprivileged(scratch: Path, roots: list[str], notes: list[str]) -> str:
    if os.geteuid() != 0:
        return f"already unprivileged (uid {os.getuid()})"
    closed = [root for root in roots if not _open_to_others(root)]
    if closed:  # e.g. an interpreter under /root: what the worker has not imported from there stays out of reach
        notes.append(f"uid {UNPRIVILEGED_ID} cannot read {', '.join(closed[:3])}{' ...' if len(closed) > 3 else ''} "
                     "(a directory on the way is closed to other users): only modules the worker already "
                     "imported from there can be used")
    os.chown(scratch, UNPRIVILEGED_ID, UNPRIVILEGED_ID)  # the one directory it may write
    no_new_privileges()  # no set-user-ID program can lead back to root, even where seccomp is opted out
    os.setgroups([])
    os.setresgid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
    os.setresuid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
    if set(os.getresuid()) != {UNPRIVILEGED_ID} or set(os.getresgid()) != {UNPRIVILEGED_ID} or os.getgroups():
        raise Refused(f"the uid or gid did not change to {UNPRIVILEGED_ID}")
    return f"uid and gid {UNPRIVILEGED_ID}, no groups (was root)"


def _open_to_others(path: str) -> bool:
    """Whether a user who owns nothing and is in no group can read ``path``: every directory on the way open to
    others for search, the path itself for reading."""
    try:
        parts = Path(path).parts
        for depth in range(1, len(parts)):
            if not os.stat(Path(*parts[:depth])).st_mode & 0o001:
                return False
        return bool(os.stat(path).st_mode & 0o004)
    except OSError:
        return True  # absent: nothing to read either way


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_bounding_set() -> bool:
    """Before the uid changes (it needs CAP_SETPCAP, which the change takes away): empty the bounding set."""
    for capability in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            return ctypes.get_errno() == errno.EINVAL  # EINVAL: past the last capability this kernel knows
    return True


def no_new_privileges() -> None:
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise errno_refusal("prctl(PR_SET_NO_NEW_PRIVS)")


def clear_capabilities(bounding_dropped: bool) -> str:
    no_new_privileges()  # nothing executed later may gain what is dropped here
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    if _libc.capset(ctypes.byref(header), (_CapData * 2)()) != 0:
        raise errno_refusal("capset")
    sets = _capability_sets()
    left = {name: value for name, value in sets.items() if value and name != "CapBnd"}
    if left:
        held = ", ".join(f"{name} {value:#x}" for name, value in left.items())
        raise Refused(f"capabilities remain after dropping them: {held}")
    if sets.get("CapBnd"):
        if bounding_dropped or os.geteuid() == 0:
            raise Refused(f"the bounding set kept {sets['CapBnd']:#x}")
        # no CAP_SETPCAP to empty it: harmless, since only exec (forbidden, and no_new_privs) could draw on it
        return "permitted, effective, inheritable and ambient sets empty; the bounding set stays (no CAP_SETPCAP)"
    return "all five sets empty"


def _capability_sets() -> dict[str, int]:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {name: int(fields[name].strip(), 16) for name in _CAPABILITY_SETS if name in fields}
