"""Operating-system confinement of a forked child, and killing it for good.

``confine`` runs in the child right after the fork, before any candidate code is loaded. It applies the strongest
layers this system offers and reports which ones took (docs/security.md discusses each):

- its own session and process group, so a timeout kills everything it started;
- a private network namespace (no interface but a downed loopback);
- rlimits: address space, CPU seconds, file size (caps stdout/stderr and any file), no core dumps, open files;
- Landlock: read only beneath the interpreter, the installed packages and system libraries; write only in the
  scratch directory; no TCP; no signals to processes outside the sandbox;
- all Linux capabilities dropped (we may run as root), then a seccomp filter: no fork, exec, ptrace, namespaces,
  mounts or internet sockets.
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from llm2.sandbox import landlock, seccomp

GIB = 1 << 30
_CLONE_NEWNET, _CLONE_NEWIPC, _CLONE_NEWUSER = 0x40000000, 0x08000000, 0x10000000
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_CAPBSET_DROP = 1, 4, 24
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 60.0  # wall clock, from fork to the final result (time the worker spends scoring excluded)
    memory_bytes: int = 4 * GIB  # address space the child may add to what the warm worker already maps
    output_bytes: int = 1 << 20  # largest file the child may write, its captured stdout and stderr included
    open_files: int = 256
    term_grace_s: float = 0.5  # between SIGTERM and SIGKILL

    @property
    def cpu_seconds(self) -> int:
        return math.ceil(self.timeout_s) + 1


@dataclass(frozen=True)
class Defences:
    """Which layers ``confine`` managed to apply in this child."""

    process_group: bool = False
    network_namespace: bool = False
    rlimits: tuple[str, ...] = ()
    landlock_abi: int = 0
    landlock_files: bool = False
    landlock_network: bool = False
    landlock_signals: bool = False
    capabilities_dropped: bool = False
    seccomp: bool = False
    notes: tuple[str, ...] = field(default=())


def read_roots() -> list[str]:
    """Directories the child may read: the interpreter, installed packages, llm2 itself and system libraries.

    Deliberately absent: the world cache, the working directory, home, /etc and /tmp (but the scratch directory).
    Whatever the child can read it could put into an error message, which reaches the proposer.
    """
    import llm2

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             str(Path(llm2.__file__).resolve().parent)}
    roots.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")) or p.endswith("lib-dynload"))
    roots.update({"/usr", "/lib", "/lib64", "/lib32", "/proc/self", "/sys/devices/system/cpu",
                  "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"})
    # from /etc only what the dynamic loader and time functions read: not /etc as a whole (shadow, keys)
    roots.update({"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"})
    return sorted(os.path.realpath(r) for r in roots if r and os.path.exists(r))


def prepare_worker() -> None:
    """In the warm worker: not dumpable, so a child without capabilities cannot read or write its memory."""
    _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def confine(scratch: Path, limits: SandboxLimits, readable: list[str]) -> Defences:
    """Apply every available layer to the calling (child) process. Irreversible; call right after fork."""
    notes: list[str] = []
    os.setsid()
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the worker's death takes the child with it
    # as root a plain network namespace; unprivileged, inside a new user namespace where the system allows one
    network = (_unshare(_CLONE_NEWNET | _CLONE_NEWIPC) or _unshare(_CLONE_NEWNET)
               or _unshare(_CLONE_NEWUSER | _CLONE_NEWNET))
    if not network:
        notes.append("no network namespace (unshare refused); Landlock and seccomp guard sockets")
    applied = _set_rlimits(limits)
    try:
        locked = landlock.restrict(readable, [str(scratch), "/dev/null"])
    except OSError as exc:
        locked = landlock.LandlockResult(landlock.abi_version())
        notes.append(f"Landlock failed: {exc}")
    dropped = _drop_capabilities()
    try:
        filtered = seccomp.install()
    except OSError as exc:
        filtered = False
        notes.append(f"seccomp failed: {exc}")
    return Defences(True, network, applied, locked.abi, locked.files, locked.network, locked.signals, dropped,
                    filtered, tuple(notes))


def _unshare(flags: int) -> bool:
    return _libc.unshare(flags) == 0


def _address_space_in_use() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _set_rlimits(limits: SandboxLimits) -> tuple[str, ...]:
    wanted = {
        "RLIMIT_AS": _address_space_in_use() + limits.memory_bytes,
        "RLIMIT_CPU": limits.cpu_seconds,
        "RLIMIT_FSIZE": limits.output_bytes,
        "RLIMIT_CORE": 0,
        "RLIMIT_NOFILE": limits.open_files,
    }
    applied = []
    for name, value in wanted.items():
        kind = getattr(resource, name)
        hard = value + 1 if name == "RLIMIT_CPU" else value  # SIGXCPU first, SIGKILL a second later
        try:
            resource.setrlimit(kind, (value, hard))
            applied.append(name)
        except (ValueError, OSError):
            pass
    return tuple(applied)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> bool:
    """Empty the bounding, effective, permitted and inheritable sets: root without any privilege."""
    for capability in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows (or no CAP_SETPCAP: capset below still runs)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    return _libc.capset(ctypes.byref(header), data) == 0


def kill_group(pid: int, grace_s: float) -> int | None:
    """SIGTERM the child's process group, SIGKILL it after ``grace_s``, reap the child; its wait status or None.

    The group is signalled before the leader is reaped, so its id cannot have been reused by then.
    """
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            _signal_group(pid, signal.SIGKILL)  # any stragglers
            return status
        time.sleep(0.01)
    _signal_group(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return status


def end_child(pid: int) -> int:
    """The child is done (or must stop now): SIGKILL its group, reap it, return its wait status."""
    _signal_group(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return status


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
