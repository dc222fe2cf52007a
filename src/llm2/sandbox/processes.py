"""Ending a confined child and everything it started, for good (in the worker)."""

from __future__ import annotations

import os
import signal
import time


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


def wait_group_gone(group: int, timeout_s: float = 10.0) -> bool:
    """Whether every process of the process group ``group`` has ended (zombies have) within ``timeout_s``. The
    child's relay is reaped by then, but the process inside the PID namespace is not ours to reap: it dies of the
    same SIGKILL, an instant later, and only then can nothing it wrote change any more."""
    deadline = time.monotonic() + timeout_s
    while _group_members(group):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _group_members(group: int) -> list[int]:
    """Live (not zombie) processes in ``group``, from /proc (a PID namespace's processes show there too)."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as file:
                fields = file.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while we looked
        if int(fields[2]) == group and fields[0] not in (b"Z", b"X"):
            members.append(int(name))
    return members


def group_processor_seconds(pgid: int) -> float:
    """The processor seconds of every process now in group ``pgid`` and of the children they reaped: read from the
    host's /proc before the group is killed (killed processes are never reaped by their parents, so no rusage
    reaches the worker). 0.0 where /proc cannot tell."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        entries = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return 0.0
    for name in entries:
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # ended meanwhile, or not ours to read
        fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) ": state, ppid, pgrp, ...
        if len(fields) > 15 and int(fields[2]) == pgid:
            total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / ticks

