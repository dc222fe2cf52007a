"""The scratch tmpfs, handed from the candidate's process to its worker, so a file or directory output can be read
once every process of the child is gone, from the size-capped tmpfs it was written to.

The tmpfs exists only in the child's mount namespace, which ends with its last process. Before any candidate code
runs, the child (still llm2's own code) opens the tmpfs's root and sends that descriptor over a Unix socket pair
the worker made, then closes its end: the candidate never holds the socket. The worker's descriptor keeps the
tmpfs alive after the namespace is gone (like a lazily unmounted file system) and is its only way in; the worker
reads through it (``view``) and lets the tmpfs go by closing it.

Where the mount layer is missing (the user's opt-out) nothing is sent and the scratch on disk is read instead;
where the layer took but nothing arrived, the output is refused.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

_MESSAGE = b"scratch"


def pair() -> tuple[socket.socket, socket.socket]:
    """(the worker's end, the child's end); the child's end is inherited across fork or passed to a spawn."""
    worker, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    child.set_inheritable(True)
    return worker, child


def send_scratch(handoff_fd: int, scratch: Path) -> None:
    """In the child, right after its mount namespace is built: the scratch tmpfs's root, then the socket closed."""
    directory = os.open(scratch, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with socket.socket(fileno=handoff_fd) as sock:
            socket.send_fds(sock, [_MESSAGE], [directory])
    finally:
        os.close(directory)


def close_unsent(handoff_fd: int | None) -> None:
    """In the child, when there is no tmpfs to send (the mount layer is missing): the candidate gets no socket."""
    if handoff_fd is not None and handoff_fd >= 0:
        try:
            os.close(handoff_fd)
        except OSError:
            pass  # already closed after a send


def receive_scratch(sock: socket.socket) -> int | None:
    """In the worker: the tmpfs root's descriptor the child sent, or None if it sent none. Never blocks: the child
    sends before its first message on the channel, so by the time its output is read the descriptor is queued."""
    sock.setblocking(False)
    try:
        message, fds, _, _ = socket.recv_fds(sock, len(_MESSAGE), 1)
    except (BlockingIOError, OSError):
        return None
    if message != _MESSAGE or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return None
    if not stat.S_ISDIR(os.fstat(fds[0]).st_mode):
        os.close(fds[0])
        return None
    return fds[0]


def view(directory_fd: int) -> Path:
    """A path through which this process reaches the directory behind ``directory_fd`` (its own descriptor table's
    link, valid as long as the descriptor is open)."""
    return Path(f"/proc/self/fd/{directory_fd}")
