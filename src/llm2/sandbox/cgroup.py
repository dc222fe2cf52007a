"""An optional cgroup per confined child: a memory cap that counts page cache, tmpfs and shared memory, and a pids cap.

Where a cgroup can be made, the worker makes one per evaluation before the child starts (``make``), with
``memory.max`` / ``memory.limit_in_bytes`` equal to the sandbox's memory limit and ``pids.max`` equal to
``RLIMIT_NPROC``'s; the child joins it itself (``join``), first thing in ``confine`` while still root, so every
process it or the candidate starts is inside before any candidate code runs. Once the child is over the worker
kills whatever is left in the group and removes it (``remove``); a worker that was SIGKILLed leaves empty
directories, removed when the next runner starts (``sweep``).

Two kinds are supported: cgroup v2, the worker's own cgroup delegated to it with ``memory`` and ``pids`` in its
controllers (systemd's user delegation), and cgroup v1, writable ``memory`` and ``pids`` hierarchies (root). Where
neither can be made the layer is absent and recorded so; not a failure: the seccomp allow-list keeps shared memory
out and ``RLIMIT_AS``/``RLIMIT_NPROC`` cap the rest (docs/security.md).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "llm2-"  # llm2-<worker pid>-<n>: the worker's pid tells the sweep whose directories these are
_made = 0


@dataclass(frozen=True)
class Cgroup:
    """One candidate's group: the directories to join (one per v1 hierarchy, one for v2) and what capped it."""

    version: int
    paths: tuple[str, ...]
    detail: str


def _own_path(controller: str) -> str | None:
    """The worker's cgroup path in the hierarchy of ``controller`` ("" for v2), from /proc/self/cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return None


def _v2_base() -> Path | None:
    """The worker's own v2 cgroup, if delegated: memory and pids enabled for its children (enabled here if it
    may), and writable. Under the v2 rule that a group with enabled controllers holds no processes, this holds
    where the worker was started in a delegated parent (``systemd-run --user --scope -p Delegate=yes``)."""
    own = _own_path("")
    mount = next((m for m in (ROOT, ROOT / "unified") if (m / "cgroup.controllers").exists()), None)
    if own is None or mount is None:
        return None
    base = mount / own.lstrip("/")
    try:
        if not {"memory", "pids"} <= set((base / "cgroup.controllers").read_text().split()):
            return None
        enabled = set((base / "cgroup.subtree_control").read_text().split())
        if not {"memory", "pids"} <= enabled:
            (base / "cgroup.subtree_control").write_text("+memory +pids")
    except OSError:
        return None
    return base if os.access(base, os.W_OK) else None


def _v1_bases() -> tuple[Path, Path] | None:
    """The worker's own groups in writable v1 memory and pids hierarchies."""
    bases = []
    for controller in ("memory", "pids"):
        own = _own_path(controller)
        base = ROOT / controller / (own or "").lstrip("/")
        if own is None or not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
            return None
        bases.append(base)
    return bases[0], bases[1]


def make(memory_bytes: int, processes: int) -> Cgroup | str:
    """A fresh group with both caps, or the reason none could be made (the layer is then absent)."""
    from llm2.sandbox.layers import SIMULATE_ENV, simulated_missing

    if "cgroup" in simulated_missing():
        return f"simulated as missing by {SIMULATE_ENV}"
    global _made
    _made += 1
    name = f"{PREFIX}{os.getpid()}-{_made}"
    base = _v2_base()
    if base is not None:
        try:
            return _make_v2(base / name, memory_bytes, processes)
        except OSError as exc:
            return f"cgroup v2 {base}: {exc.strerror or exc}"
    bases = _v1_bases()
    if bases is None:
        return "no writable cgroup: neither a delegated cgroup v2 with memory and pids nor writable v1 hierarchies"
    try:
        return _make_v1(bases[0] / name, bases[1] / name, memory_bytes, processes)
    except OSError as exc:
        return f"cgroup v1: {exc.strerror or exc}"


def _make_v2(path: Path, memory_bytes: int, processes: int) -> Cgroup:
    path.mkdir()
    group = Cgroup(2, (str(path),), f"cgroup v2 {path}: memory.max {memory_bytes}, pids.max {processes}")
    try:
        (path / "memory.max").write_text(str(memory_bytes))
        if (path / "memory.swap.max").exists():
            (path / "memory.swap.max").write_text("0")  # swapped out is memory too
        (path / "pids.max").write_text(str(processes))
    except OSError:
        remove(group)
        raise
    return group


def _make_v1(memory: Path, pids: Path, memory_bytes: int, processes: int) -> Cgroup:
    made: list[str] = []
    try:
        memory.mkdir()
        made.append(str(memory))
        pids.mkdir()
        made.append(str(pids))
        (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
        swap_limit = memory / "memory.memsw.limit_in_bytes"
        if swap_limit.exists():
            swap_limit.write_text(str(memory_bytes))
        (pids / "pids.max").write_text(str(processes))
    except OSError:
        remove(Cgroup(1, tuple(made), ""))
        raise
    return Cgroup(1, (str(memory), str(pids)),
                  f"cgroup v1 {memory.name}: memory.limit_in_bytes {memory_bytes}, pids.max {processes}")


def join(group: Cgroup) -> str:
    """Move the calling process into the group (every process it starts then is inside); the detail to record."""
    for path in group.paths:
        with open(os.path.join(path, "cgroup.procs"), "w") as procs:
            procs.write(str(os.getpid()))
    return group.detail


def remove(group: Cgroup, timeout_s: float = 10.0) -> bool:
    """Kill whatever is still in the group, wait until it is empty, remove its directories. Whether all went."""
    deadline = time.monotonic() + timeout_s
    gone = True
    for path in group.paths:
        while True:
            members = _members(path)
            if not members:
                break
            if time.monotonic() > deadline:
                return False
            for pid in members:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.005)
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:  # a member's exit is still being accounted: retry briefly
            gone = _retry_rmdir(path, deadline) and gone
    return gone


def _retry_rmdir(path: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        time.sleep(0.01)
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            continue
    return False


def _members(path: str) -> list[int]:
    try:
        with open(os.path.join(path, "cgroup.procs")) as procs:
            return [int(line) for line in procs.read().split()]
    except FileNotFoundError:
        return []


def sweep() -> int:
    """Remove the empty groups a worker that is gone left behind (SIGKILLed before it could); how many went."""
    candidates = []
    base = _v2_base()
    if base is not None:
        candidates.append(base)
    candidates.extend(_v1_bases() or ())
    removed = 0
    for parent in candidates:
        try:
            names = [entry.name for entry in os.scandir(parent) if entry.is_dir() and entry.name.startswith(PREFIX)]
        except OSError:
            continue
        for name in names:
            owner = name[len(PREFIX):].split("-", 1)[0]
            if owner.isdigit() and int(owner) != os.getpid() and not os.path.exists(f"/proc/{owner}"):
                try:
                    os.rmdir(parent / name)  # only an empty group can be removed: a live one stays
                    removed += 1
                except OSError:
                    pass
    return removed
