"""The child's own root: a tmpfs holding only what it needs, bound read-only at the same paths, and nothing else.

Built in the candidate's process (PID 1 of its namespace) inside its own mount namespace, then made its root with
pivot_root; the host's tree is detached. What it holds: each read root (resolved, carved around the hidden paths,
so those are simply not there), the top-level links of / that lead into them (``/lib -> usr/lib``: what the
dynamic loader's cache names), a fresh /proc of its own PID namespace, the device files it may use, and the scratch
directory (the size-capped tmpfs, or the directory on disk) writable. Landlock is applied on top, to the same paths.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Iterable

from llm2.sandbox.layers import Refused, failure_text

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND, _MS_REC = 0x1, 0x2, 0x4, 0x8, 0x20, 0x1000, \
    0x4000
_MS_NOATIME, _MS_NODIRATIME, _MS_RELATIME = 0x400, 0x800, 1 << 21
_MNT_DETACH = 2
OLD_ROOT = ".old-root"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.syscall.restype = ctypes.c_long
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = (lambda text: None if text is None else text.encode())
    if _libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
        raise Refused(failure_text(f"mount({source} on {target})", ctypes.get_errno()))


def _kept_flags(path: str) -> int:
    """The flags a read-only remount must keep (in a user namespace the kernel refuses to drop locked ones)."""
    flags, kept = os.statvfs(path).f_flag, 0
    for st_flag, ms_flag in ((os.ST_NOEXEC, _MS_NOEXEC), (os.ST_NOATIME, _MS_NOATIME),
                             (os.ST_NODIRATIME, _MS_NODIRATIME), (os.ST_RELATIME, _MS_RELATIME),
                             (os.ST_NODEV, _MS_NODEV), (os.ST_NOSUID, _MS_NOSUID)):
        if flags & st_flag:
            kept |= ms_flag
    return kept


def _bind(source: str, new_root: str, writable: bool = False, device: bool = False) -> None:
    target = new_root + source
    if os.path.isdir(source):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.exists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    _mount(source, target, None, _MS_BIND | _MS_REC)
    if not writable:
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _kept_flags(target)
        _mount(None, target, None, flags | (0 if device else _MS_NODEV))


def _outermost(paths: Iterable[str]) -> list[str]:
    """The paths not beneath another of them (what a bind of the outer one already shows)."""
    chosen: list[str] = []
    for path in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        if not any(path == outer or path.startswith(outer.rstrip("/") + "/") for outer in chosen):
            chosen.append(path)
    return chosen


def build_root(scratch: Path, read_roots: Iterable[str], devices: Iterable[str], scratch_tmpfs: str | None) -> str:
    """Make the child's root and enter it. ``scratch_tmpfs``: the tmpfs options for the scratch (None: the
    directory on disk, bound writable). The caller has made its own mount namespace private."""
    staging = str(scratch)  # any empty directory does; the scratch is one, and is mounted over again inside
    on_disk = os.open(scratch, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # the directory beneath, for a bind
    try:
        return _build(scratch, staging, on_disk, read_roots, devices, scratch_tmpfs)
    finally:
        os.close(on_disk)


def _build(scratch: Path, staging: str, on_disk: int, read_roots: Iterable[str], devices: Iterable[str],
           scratch_tmpfs: str | None) -> str:
    _mount("llm2-root", staging, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,nr_inodes=4096,mode=0755")
    roots = [r for r in _outermost(os.path.realpath(r) for r in read_roots)
             if not r.startswith("/proc/") and r != "/proc" and os.path.exists(r)]
    device_files = {os.path.realpath(d) for d in devices} | {r for r in roots if r.startswith("/dev/")}
    for root in roots:
        if root not in device_files:
            _bind(root, staging)
    for device in sorted(device_files):
        if os.path.exists(device):
            _bind(device, staging, writable=True, device=True)
    for entry in os.listdir("/"):  # merged /usr: /lib, /lib64, /bin are links the loader's cache names
        link = "/" + entry
        if os.path.islink(link) and not os.path.lexists(staging + link) and any(os.path.realpath(link).startswith(r.rstrip("/") + "/")
                                        or os.path.realpath(link) == r for r in roots):
            os.symlink(os.readlink(link), staging + link)
    inside = staging + str(scratch)
    os.makedirs(inside, mode=0o755, exist_ok=True)
    if scratch_tmpfs is None:
        _mount(f"/proc/self/fd/{on_disk}", inside, None, _MS_BIND)
    else:
        _mount("llm2-scratch", inside, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, scratch_tmpfs)
    os.makedirs(staging + "/proc", mode=0o555, exist_ok=True)
    _mount("proc", staging + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    os.mkdir(os.path.join(staging, OLD_ROOT), 0o700)
    number = _SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise Refused(f"no pivot_root number for {os.uname().machine}")
    os.chdir(staging)
    if _libc.syscall(ctypes.c_long(number), b".", OLD_ROOT.encode()) != 0:
        raise Refused(failure_text("pivot_root", ctypes.get_errno()))
    if _libc.umount2(("/" + OLD_ROOT).encode(), _MNT_DETACH) != 0:
        raise Refused(failure_text("umount2(the host's root)", ctypes.get_errno()))
    os.rmdir("/" + OLD_ROOT)
    _mount(None, "/", None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)  # nothing new beside the binds
    os.chdir(scratch)
    return f"its own root: {len(roots)} read-only trees, /proc of its own, the scratch"
