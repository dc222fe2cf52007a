"""Before a worker runs its first candidate: can a confined child read any of the task's hidden paths?

A child forked exactly as a candidate's process is (the same read roots, limits, opt-outs and hidden paths) tries
to read each hidden path, as the task names it and resolved, and, for a directory, a file inside it by both
routes. Any success means the filesystem layers do not hold on this machine, and the worker refuses every
candidate with the reason (fail closed), unless the user opted out of Landlock, which is what protects reads.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Iterable

from llm2.sandbox.confine import confine
from llm2.sandbox.layers import SandboxUnavailable
from llm2.sandbox.processes import end_child
from llm2.sandbox.rlimits import SandboxLimits

TIMEOUT_S = 30.0


def probes(hidden: Iterable[str]) -> list[str]:
    """Each hidden path as given and resolved, and for a directory one file inside it by both routes."""
    paths: list[str] = []
    for given in hidden:
        resolved = os.path.realpath(given)
        paths += [given, resolved]
        if os.path.isdir(resolved):
            sample = next((os.path.join(top, name) for top, _, names in os.walk(resolved) for name in names), None)
            if sample is not None:
                inside = os.path.relpath(sample, resolved)
                paths += [os.path.join(given, inside), sample]
    return list(dict.fromkeys(paths))


def readable_hidden(hidden: Iterable[str], readable: list[str], limits: SandboxLimits,
                    allow_missing: frozenset[str], scratch_root: Path) -> list[str]:
    """The hidden paths (as probed) that a confined child could read; [] when none (or when the child could not
    be confined at all: each candidate is then refused with that reason anyway)."""
    hidden = list(hidden)
    tried = probes(hidden)
    if not tried:
        return []
    scratch = Path(tempfile.mkdtemp(prefix="selftest-", dir=scratch_root))
    os.chmod(scratch, 0o777)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, which always ends in os._exit
        os.close(read_end)
        answer: dict = {"read": []}
        try:
            confine(scratch, limits, readable, allow_missing, hidden)
            answer["read"] = [path for path in tried if _can_read(path)]
        except SandboxUnavailable as exc:
            answer = {"refused": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - the test's own failure is reported, not raised
            answer = {"refused": f"{type(exc).__name__}: {exc}"}
        os.write(write_end, json.dumps(answer).encode())
        os._exit(0)
    os.close(write_end)
    try:
        text = _read_all(read_end, time.monotonic() + TIMEOUT_S)
    finally:
        os.close(read_end)
        end_child(pid)
        _remove(scratch)
    try:
        return list(json.loads(text).get("read", []))
    except ValueError:
        return []


def _can_read(path: str) -> bool:
    """Whether anything of the path's content comes back (an empty cover, as the mount layer leaves, is nothing)."""
    try:
        if os.path.isdir(path):
            return bool(os.listdir(path))
        with open(path, "rb") as handle:
            return bool(handle.read(1))
    except OSError:
        return False


def _read_all(fd: int, deadline: float) -> str:
    import select

    chunks = []
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            break
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _remove(scratch: Path) -> None:
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)


def refusal(hidden: Iterable[str], readable: list[str], limits: SandboxLimits, allow_missing: frozenset[str],
            scratch_root: Path) -> str | None:
    """The reason every candidate must be refused, or None: the self-test, under the fail-closed rule."""
    found = readable_hidden(hidden, readable, limits, allow_missing, scratch_root)
    if not found or "landlock" in allow_missing:
        return None
    return (f"sandbox unavailable: landlock: a confined child could read the task's hidden path {found[0]} "
            "(the start-up self-test)")
