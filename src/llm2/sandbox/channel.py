"""The narrow channel from a sandboxed child to its worker: a small JSON header plus safetensors bytes, over a pipe.

A frame is ``!II`` (header length, payload length), the UTF-8 JSON header, then the payload. The reader trusts
nothing: lengths are capped before anything is read, reads stop at a deadline, the payload is parsed by safetensors
(no pickle, no code) and every tensor is checked against the state dict the worker expects.

Larger outputs stay in the child's scratch (its tmpfs, handed to the worker: ``handoff.py``) and are read only
once the child is dead: one safetensors file (``decode_file``, checked like a payload), or a whole directory
(``take_directory``: copied out of the tmpfs, or moved out of a scratch on disk, first, then checked file by file:
regular files of the task's names only, no links, a size limit, every safetensors header parsable; its tensors are
the scorer's to check).
"""

from __future__ import annotations

import errno
import fnmatch
import json
import math
import os
import re
import select
import shutil
import stat
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from llm2.task_api.base import TensorSpec

_FRAME = struct.Struct("!II")
MAX_HEADER_BYTES = 1 << 20
HEADER_KINDS = frozenset({"stage", "probe", "pause", "result", "error", "fingerprint"})


class ChannelError(Exception):
    """The child sent something that breaks the protocol; the message says what."""


class ChannelTimeout(Exception):
    """No complete frame arrived before the deadline."""


class ChannelClosed(Exception):
    """The child closed its end (it exited or crashed) before a complete frame."""


@dataclass(frozen=True)
class Message:
    header: dict
    payload: bytes = b""


WeightsSpec = dict[str, TensorSpec]


def payload_limit(spec: WeightsSpec) -> int:
    """Bytes a faithful payload can take: the tensors plus room for safetensors' own header."""
    data = sum(math.prod(s.shape) * _dtype(s.dtype).itemsize for s in spec.values())
    return data + 256 * len(spec) + 65_536


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r} in a task's output spec")
    return dtype


# -- child side ------------------------------------------------------------------------------------------------
def encode_tensors(tensors: dict[str, torch.Tensor]) -> bytes:
    return save_safetensors({name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()})


def send(fd: int, header: dict, payload: bytes = b"") -> None:
    data = json.dumps(header).encode()
    _write_all(fd, _FRAME.pack(len(data), len(payload)) + data + payload)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# -- worker side -----------------------------------------------------------------------------------------------
def receive(fd: int, deadline: float, max_payload: int) -> Message:
    """Read one frame before ``deadline`` (a time.monotonic() value), refusing oversize or malformed ones."""
    header_length, payload_length = _FRAME.unpack(_read_exactly(fd, _FRAME.size, deadline))
    if header_length > MAX_HEADER_BYTES:
        raise ChannelError(f"the child sent a {header_length:,}-byte header; the limit is {MAX_HEADER_BYTES:,}")
    if payload_length > max_payload:
        raise ChannelError(f"the child sent {payload_length:,} bytes of tensors; the model's weights take at most "
                           f"{max_payload:,}")
    try:
        header = json.loads(_read_exactly(fd, header_length, deadline))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChannelError(f"the child sent a header that is not JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("kind") not in HEADER_KINDS:
        raise ChannelError("the child sent a header without a known 'kind'")
    return Message(header, _read_exactly(fd, payload_length, deadline))


def _read_exactly(fd: int, count: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    remaining = count
    while remaining:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ChannelTimeout()
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            raise ChannelTimeout()
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise ChannelClosed()
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def decode_file(path: Path, spec: WeightsSpec) -> dict[str, torch.Tensor]:
    """Read and validate the tensors a (dead) child left in a file; ChannelError names the first problem found."""
    return decode_weights(read_regular_file(path, payload_limit(spec)), spec)


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, a regular file the child wrote, at most ``limit`` of them. Opened without following a
    link (O_NOFOLLOW) and without waiting on a FIFO (O_NONBLOCK), then checked through its descriptor: a link, a
    FIFO, a device or a directory in its place is refused, and nothing is read through a name twice."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise ChannelError(f"the child wrote no {path.name}") from None
    except OSError as exc:
        raise ChannelError(f"the child's {path.name} cannot be opened as a file of its own "
                           f"({os.strerror(exc.errno or 0)}: a symbolic link is refused)") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ChannelError(f"the child's {path.name} is not a regular file (FIFOs, devices and directories are "
                               "refused)")
        if info.st_size > limit:
            raise ChannelError(f"the child's {path.name} holds {info.st_size:,} bytes; the model's weights take at "
                               f"most {limit:,}")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise ChannelError(f"the child's {path.name} holds more than {limit:,} bytes")
        return data
    finally:
        os.close(fd)


def decode_weights(payload: bytes, spec: WeightsSpec) -> dict[str, torch.Tensor]:
    """Parse and validate returned weights; ChannelError names the first problem found."""
    try:
        tensors = load_safetensors(payload)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the child's fault
        raise ChannelError(f"the returned weights are not valid safetensors ({type(exc).__name__})") from None
    missing, unexpected = sorted(set(spec) - set(tensors)), sorted(set(tensors) - set(spec))
    if missing or unexpected:
        parts = ([f"missing {missing[:5]}"] if missing else []) + ([f"unexpected {unexpected[:5]}"] if unexpected else [])
        raise ChannelError(f"the returned weights do not match the model's state dict: {', '.join(parts)}")
    for name, expected in spec.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != tuple(expected.shape) or tensor.dtype != _dtype(expected.dtype):
            raise ChannelError(f"weight {name!r} is {str(tensor.dtype).removeprefix('torch.')} "
                               f"{list(tensor.shape)}; the model's is {expected.dtype} {list(expected.shape)}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ChannelError(f"weight {name!r} holds NaN or infinite values")
    return tensors


def decode_loss_trace(header: dict) -> list[float]:
    trace = header.get("loss_trace", [])
    if not isinstance(trace, list) or not all(isinstance(v, (int, float)) for v in trace):
        raise ChannelError("the loss trace is not a list of numbers")
    return [float(v) for v in trace]


# -- a directory of files --------------------------------------------------------------------------------------
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")  # no path separators, no hidden or odd names
MAX_DIRECTORY_FILES = 4096


def take_directory(scratch: Path, name: object, destination: Path, limit: int, patterns: Sequence[str]) -> Path:
    """Move the directory a (dead) child named, ``scratch/name``, to ``destination`` (a new path the child never
    could reach; copied, from the child's tmpfs), make it the worker's own, and check it: only regular files, each with a single name (no symbolic
    or hard links, no subdirectories), named as ``patterns`` allow, ``limit`` bytes in all, every ``*.safetensors``
    file's header valid. Returns ``destination``; ChannelError names the first problem (nothing is left behind)."""
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
        raise ChannelError(f"the child named an output directory that is not a plain name in its working "
                           f"directory: {str(name)[:100]!r}")
    source = scratch / name
    try:
        mode = os.lstat(source).st_mode
    except OSError:
        raise ChannelError(f"the child wrote no directory {name!r}") from None
    if not stat.S_ISDIR(mode):
        raise ChannelError(f"the child's output {name!r} is not a directory (a symbolic link, or a file)")
    try:
        os.rename(source, destination)  # out of the scratch before anything in it is looked at
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_out(source, destination, limit, patterns)  # from the child's scratch tmpfs: its processes are all gone
    try:
        _own(destination, 0o700)  # no other user, the candidate's included, can enter it from here on
        _check_directory(destination, limit, patterns)
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    return destination


def _copy_out(source: Path, destination: Path, limit: int, patterns: Sequence[str]) -> None:
    """Copy a directory from another file system (the child's scratch tmpfs) into a new ``destination`` of the
    worker's own: regular files with a single name only (opened without following a link, checked through the
    descriptor), ``limit`` bytes in all; anything else is refused before it is copied, and nothing is left."""
    os.mkdir(destination, 0o700)
    try:
        total = 0
        with os.scandir(source) as scan:
            for count, entry in enumerate(scan, 1):
                if count > MAX_DIRECTORY_FILES:
                    raise ChannelError(f"the output directory holds more than {MAX_DIRECTORY_FILES} entries")
                if not stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                    raise ChannelError(f"the output directory holds {entry.name[:100]!r}, which is not a regular "
                                       "file (symbolic links, subdirectories, pipes and devices are refused)")
                if not PLAIN_NAME.fullmatch(entry.name) or not any(fnmatch.fnmatchcase(entry.name, p)
                                                                   for p in patterns):
                    raise ChannelError(f"the output directory holds {entry.name[:100]!r}; only files named "
                                       f"{', '.join(patterns)} are accepted")
                total += _copy_file(source / entry.name, destination / entry.name, limit - total)
                if total > limit:
                    raise ChannelError(f"the output directory holds more than {limit:,} bytes, the most this "
                                       "task's output takes")
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise


def _refuse_unless_own_file(info: os.stat_result, shown: str) -> None:
    """A directory output's entry must be a regular file with one name: no pipe, device or hard link to elsewhere."""
    if not stat.S_ISREG(info.st_mode):
        raise ChannelError(f"the output directory holds {shown!r}, which is not a regular file (subdirectories, "
                           "pipes and devices are refused)")
    if info.st_nlink != 1:
        raise ChannelError(f"the output directory's {shown!r} is a hard link ({info.st_nlink} names): only "
                           "files of its own are accepted")


def _copy_file(source: Path, target: Path, room: int) -> int:
    shown = source.name[:100]
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        raise ChannelError(f"the output directory holds {shown!r}, which is not a regular file (symbolic links, "
                           "subdirectories, pipes and devices are refused)") from None
    try:
        info = os.fstat(fd)
        _refuse_unless_own_file(info, shown)
        if info.st_size > room:
            return info.st_size  # over the limit: the caller says so, nothing copied
        with os.fdopen(fd, "rb", closefd=False) as reader, open(target, "xb") as writer:
            copied = shutil.copyfileobj(reader, writer, 1 << 20) or writer.tell()
        if copied != info.st_size:
            raise ChannelError(f"the output directory's {shown!r} changed while it was copied")
        return copied
    finally:
        os.close(fd)


def _check_directory(directory: Path, limit: int, patterns: Sequence[str]) -> None:
    total = 0
    with os.scandir(directory) as scan:
        entries = []
        for entry in scan:
            entries.append(entry)
            if len(entries) > MAX_DIRECTORY_FILES:
                raise ChannelError(f"the output directory holds more than {MAX_DIRECTORY_FILES} entries")
    allowed = ", ".join(patterns)
    for entry in sorted(entries, key=lambda e: e.name):
        shown = entry.name[:100]
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            raise ChannelError(f"the output directory holds a symbolic link, {shown!r}: only regular files are "
                               "accepted")
        _refuse_unless_own_file(info, shown)
        if not PLAIN_NAME.fullmatch(entry.name) or not any(fnmatch.fnmatchcase(entry.name, p) for p in patterns):
            raise ChannelError(f"the output directory holds {shown!r}; only files named {allowed} are accepted")
        total += info.st_size
        if total > limit:
            raise ChannelError(f"the output directory holds more than {limit:,} bytes, the most this task's "
                               "output takes")
        path = Path(entry.path)
        _own(path, 0o600)
        if entry.name.endswith(".safetensors"):
            _check_safetensors_header(path)


def _own(path: Path, mode: int) -> None:
    """The worker's user becomes the owner (a child confined as another user wrote it) and alone may use it."""
    if os.geteuid() == 0:
        os.chown(path, os.geteuid(), os.getegid(), follow_symlinks=False)
    os.chmod(path, mode)  # not a link: checked, and nobody else can swap it any more


def _check_safetensors_header(path: Path) -> None:
    """safetensors' own parser reads the header (JSON: names, dtypes, shapes, offsets that tile the file); no
    tensor is read and nothing can execute."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as exc:  # noqa: BLE001 - any parse failure is the child's fault
        raise ChannelError(f"the output directory's {path.name!r} is not a valid safetensors file "
                           f"({type(exc).__name__}: {str(exc)[:200]})") from None
