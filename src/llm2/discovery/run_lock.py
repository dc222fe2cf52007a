"""One writer per run directory: an exclusive lock on RUN_DIR/writer.lock, held for the life of the process.

A POSIX record lock (fcntl) belongs to the process: the kernel drops it when the process ends, however it ends
(a SIGKILLed run can always be resumed), and forked workers do not inherit it. Readers (leaderboard, report,
export, heldout) never touch it. The file holds the holder's pid, so a refused writer can say who holds it. The
file is opened once per process and never closed: closing any descriptor of it would drop a POSIX lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "writer.lock"

# Open lock files by resolved run directory: kept open (and so locked) until the process ends.
_held: dict[Path, int] = {}


class RunDirBusy(Exception):
    """Another process holds the run directory's lock."""

    def __init__(self, run_dir: Path, pid: int | None):
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"{run_dir} is in use: {holder} is writing it (one writer per run directory; wait for it "
                         "to end, or stop it, then --resume)")
        self.pid = pid


def hold(run_dir: Path) -> None:
    """Take ``run_dir``'s writer lock for the rest of this process; a no-op when this process holds it already.

    RunDirBusy when another process holds it; OSError when the lock file cannot be opened.
    """
    key = Path(run_dir).resolve()
    if key in _held:
        return
    descriptor = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pid = _recorded_pid(descriptor)
        os.close(descriptor)
        raise RunDirBusy(Path(run_dir), pid) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    _held[key] = descriptor


def _recorded_pid(descriptor: int) -> int | None:
    text = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
