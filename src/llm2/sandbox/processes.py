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
