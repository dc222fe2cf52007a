"""llm2's own temporary directories (the executor's ``llm2-exec-*``, Ray's, a worker's home, a confined call's
scratch...) and the sweep of those left by killed runs.

A clean close removes its directory; a run that was SIGKILLed cannot, so each new executor sweeps before it makes its
own, every prefix of ``PREFIXES`` (an allow-list: only names llm2 makes). The maker, the trusted parent, writes a
marker into the directory as soon as it exists: its pid, that process's start time (``/proc/<pid>/stat`` field 22),
the boot and its PID namespace. A directory is removed only when every one of these holds: its name has one of the
prefixes; it is a real directory, not a symbolic link, owned by this user; its marker is a regular file of this user
that parses; and its owner is gone (another boot, no such pid, or that pid now names a later process: pid reuse).
Anything else is kept: no marker (a foreign directory, or one whose maker is between ``mkdtemp`` and the marker), a
marker of another PID namespace (its pids mean nothing here), a /proc that cannot be read. The sweep fails safe by
keeping, and any error while removing is ignored (another sweeper may race this one).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from typing import Iterator

PREFIX = "llm2-exec-"  # the local executor's run directory
# every temporary directory llm2 makes, and so may sweep; a new maker adds its prefix here
PREFIXES = (PREFIX, "llm2-ray-", "llm2-worker-", "llm2-call-", "llm2-preflight-", "llm2-warm-up-", "llm2-merged-")
MARKER = "llm2-owner.json"
_MARKER_BYTES = 4096  # a real marker is under 200 bytes; anything longer is not ours


@dataclasses.dataclass(frozen=True)
class Owner:
    """The process that made a directory, told apart from any later process that gets its pid."""

    pid: int
    start_ticks: int  # clock ticks after boot at which it started: a reused pid has another
    boot_id: str
    pid_namespace: str  # e.g. "pid:[4026531836]"; a pid is only meaningful within its namespace


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat; None when there is no such process. Raises OSError when /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rfind(b")") + 2:].split()  # after "pid (comm) ", where comm may hold spaces and ")"
    try:
        return int(fields[19])  # field 3 (state) is fields[0]
    except (IndexError, ValueError):
        raise OSError(f"unreadable /proc/{pid}/stat") from None


def this_process() -> Owner | None:
    """This process as an owner; None where /proc cannot say (then nothing is marked, so nothing is swept)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot_id = handle.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
        ticks = start_ticks(os.getpid())
    except (OSError, UnicodeDecodeError):
        return None
    if ticks is None or not boot_id:
        return None
    return Owner(os.getpid(), ticks, boot_id, namespace)


def make_run_dir(parent: str | None = None, prefix: str = PREFIX) -> str:
    """Sweep the stale directories in ``parent`` (the temp dir by default), then make this run's, marked."""
    sweep(parent)
    return marked_dir(prefix, parent)


def marked_dir(prefix: str, parent: str | None = None) -> str:
    """A new directory (``tempfile.mkdtemp``) with its owner's marker, so a sweep can remove it once its maker is
    killed."""
    assert prefix in PREFIXES, f"{prefix!r}: add it to PREFIXES, or the sweep will never remove it"
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    owner = this_process()
    if owner is not None:
        write_marker(path, owner)
    return path


@contextmanager
def temporary_dir(prefix: str, parent: str | None = None) -> Iterator[str]:
    """``tempfile.TemporaryDirectory`` with a marker: removed on leaving, swept if its maker is killed first."""
    path = marked_dir(prefix, parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_marker(path: str, owner: Owner) -> None:
    """The marker, created new (never through a link) in the directory just made; one short write."""
    fd = os.open(os.path.join(path, MARKER), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.write(fd, json.dumps(dataclasses.asdict(owner)).encode())
    finally:
        os.close(fd)


def sweep(parent: str | None = None) -> list[str]:
    """Remove llm2's directories in ``parent`` whose owner is gone; returns their paths. Never raises."""
    here = this_process()
    if here is None:
        return []
    parent = parent or tempfile.gettempdir()
    try:
        with os.scandir(parent) as entries:
            names = [e.name for e in entries if e.name.startswith(PREFIXES) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    removed = []
    for name in names:
        path = os.path.join(parent, name)
        try:
            if _stale(path, here) and _remove(path):
                removed.append(path)
        except OSError:
            continue  # gone meanwhile, or not ours to remove: another sweeper's race, or a later start's task
    return removed


def _stale(path: str, here: Owner) -> bool:
    owner = _read_marker(path)
    if owner is None:
        return False
    if owner.boot_id != here.boot_id:
        return True  # every process of an earlier boot is gone
    if owner.pid_namespace != here.pid_namespace:
        return False  # its pids cannot be looked up from here
    return start_ticks(owner.pid) != owner.start_ticks  # OSError (cannot tell) propagates: kept


def _read_marker(path: str) -> Owner | None:
    """The owner named in the directory's marker, when the directory (not a link) and the marker are this user's."""
    uid = os.getuid()
    directory = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if os.fstat(directory).st_uid != uid:
            return None
        try:
            fd = os.open(MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory)
        except OSError:
            return None  # no marker (or a link in its place): not ours to judge
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
                return None
            data = os.read(fd, _MARKER_BYTES + 1)
        finally:
            os.close(fd)
    finally:
        os.close(directory)
    return _parse(data) if len(data) <= _MARKER_BYTES else None


def _parse(data: bytes) -> Owner | None:
    try:
        fields = json.loads(data)
        owner = Owner(**fields)
    except (ValueError, TypeError, RecursionError):
        return None
    numbers_ok = all(type(v) is int and v >= 0 for v in (owner.pid, owner.start_ticks)) and owner.pid > 0
    texts_ok = all(type(v) is str and v for v in (owner.boot_id, owner.pid_namespace))
    return owner if numbers_ok and texts_ok else None


def _remove(path: str) -> bool:
    """Everything but the marker first, the marker last: a sweep cut short leaves a directory the next one removes.
    A link inside is unlinked, never followed (``shutil.rmtree`` walks by descriptors and follows none either)."""
    with os.scandir(path) as entries:
        inside = [(e.path, e.is_dir(follow_symlinks=False)) for e in entries if e.name != MARKER]
    for entry, is_directory in inside:
        if is_directory:
            shutil.rmtree(entry, ignore_errors=True)  # what stays is judged below
        else:
            try:
                os.unlink(entry)
            except OSError:
                pass
    if os.listdir(path) != [MARKER]:
        return False  # something stayed (not ours to remove): keep the marker so a later sweep tries again
    os.unlink(os.path.join(path, MARKER))
    os.rmdir(path)
    return True
