"""The isolation layers a child builds around itself: its own session, user, PID, network, IPC and mount namespaces,
the relay that stays outside the PID namespace, and the scratch directory as a size-capped tmpfs.

The mount namespace is made by the candidate's process itself, after that fork, so that the /proc it mounts is
its PID namespace's (``rootfs.py`` builds its root there).

The PID namespace needs one more fork: ``unshare(CLONE_NEWPID)`` only places the caller's children in it. The
forked child becomes a relay that runs no candidate code: it waits for its own child (PID 1 of the namespace) and
exits with the same status, re-raising the same signal. Both stay in the process group the worker kills; each dies
with its parent (PR_SET_PDEATHSIG), so killing the worker kills both.
"""

from __future__ import annotations

import ctypes
import os
import resource
import select
import signal

from llm2.sandbox.layers import LayerRecorder, Refused, SandboxUnavailable, errno_refusal, reason_of
from llm2.sandbox.rlimits import SandboxLimits, bytes_text

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWIPC = 0x00020000, 0x40000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID = 0x10000000, 0x20000000
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE = 1, 4
_MS_REC, _MS_PRIVATE = 0x4000, 1 << 18
# a scratch of many tiny files costs kernel memory per inode, which the size cap does not count
SCRATCH_INODES = 16384

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)


def new_session() -> str:
    try:
        os.setsid()
    except PermissionError:
        if os.getpgid(0) != os.getpid():
            raise Refused("setsid failed: EPERM, and the process does not lead its own process group") from None
        return "already leads its own session or process group"
    return "own session and process group"


def die_with_parent(liveness: int | None = None, parent: int | None = None) -> None:
    """PR_SET_PDEATHSIG, then make sure the parent did not die before it took (we would be an orphan)."""
    if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise SandboxUnavailable("process_group", str(errno_refusal("prctl(PR_SET_PDEATHSIG)")))
    if liveness is not None:
        if select.select([liveness], [], [], 0)[0]:  # the relay's end closed: it is gone
            os._exit(1)
    elif parent is not None and os.getppid() != parent:
        os._exit(1)


def user_namespace_for(layers: LayerRecorder) -> str | None:
    """Not root: the other namespaces need a user namespace of our own. Returns why it failed, if it did."""
    if os.geteuid() == 0 or {"pid_namespace", "network_namespace", "mount_namespace"} <= layers.simulated:
        return None
    uid, gid = os.geteuid(), os.getegid()
    if _libc.unshare(CLONE_NEWUSER) != 0:
        return str(errno_refusal("unshare(CLONE_NEWUSER), which a user without privileges needs for it,"))
    # a non-dumpable process (the worker is one) has /proc/self owned by root: dumpable while writing its maps
    _libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)
    try:  # map the user to itself, so files keep their owner and the uid stays what it was
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)
    except OSError as exc:
        return f"writing the user namespace's id maps failed: {reason_of(exc)}"
    finally:
        _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    layers.notes.append(f"in a user namespace of its own (uid {uid} mapped to itself)")
    return None


def unshare(flags: int, what: str, namespace_error: str | None) -> str:
    if namespace_error:
        raise Refused(namespace_error)
    if _libc.unshare(flags) != 0:
        raise errno_refusal(f"unshare (new {what} namespace)")
    return f"new {what} namespace"


def private_mount_namespace(namespace_error: str | None) -> str:
    """A mount namespace of its own, nothing in it shared with the host's: a mount made here never propagates."""
    made = unshare(CLONE_NEWNS, "mount", namespace_error)
    if _libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise errno_refusal("mount(/, MS_REC | MS_PRIVATE)")
    return made


def scratch_tmpfs_options(limits: SandboxLimits) -> str | None:
    """The scratch tmpfs's options (its size is the total the candidate can write), or None: it stays on disk."""
    if not limits.scratch_bytes:
        return None
    return f"size={limits.scratch_bytes},nr_inodes={SCRATCH_INODES},mode=0700"


def scratch_text(limits: SandboxLimits) -> str:
    if not limits.scratch_bytes:
        return "the scratch stays on disk (the task's output is read from it)"
    return f"the scratch is a tmpfs of {bytes_text(limits.scratch_bytes)}, {SCRATCH_INODES} files at most"


def fork_into_namespace(limits: SandboxLimits) -> int:
    """Fork into the new PID namespace. Returns, in the child (its PID 1), the read end of a pipe that reports the
    relay's death; the caller's process becomes the relay and never returns."""
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        raise SandboxUnavailable("pid_namespace", f"fork into the new namespace failed: {reason_of(exc)}") from None
    if pid == 0:
        os.close(write_end)
        return read_end
    _relay(pid, write_end, limits)


def _relay(pid: int, keep_fd: int, limits: SandboxLimits) -> None:
    """The process left outside the namespace: hold nothing, wait for the child, end the way it ended."""
    status = 1 << 8
    try:
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGXCPU,
                       signal.SIGXFSZ):
            _libc.signal(number, 0)  # SIG_DFL: a signal to the group ends the relay, and the child with it
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.closerange(0, keep_fd)  # the channel's pipes among them: EOF reaches the worker when the child ends
        os.closerange(keep_fd + 1, max(keep_fd + 2, resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
        _, status, usage = os.wait4(pid, 0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL \
                and usage.ru_utime + usage.ru_stime >= limits.cpu_seconds:
            # PID 1 of a namespace ignores SIGXCPU; the hard CPU limit's SIGKILL then ended it. Say which it was.
            status = int(signal.SIGXCPU)  # the wait status of a process that SIGXCPU ended
    finally:
        _end_like(status)


def _end_like(status: int) -> None:
    if os.WIFEXITED(status):
        os._exit(os.WEXITSTATUS(status))
    number = os.WTERMSIG(status) if os.WIFSIGNALED(status) else status
    _libc.signal(number, 0)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
    os.kill(os.getpid(), number)
    os._exit(128 + number)  # a signal whose default is to be ignored


def require_single_thread() -> None:
    """Landlock, capabilities and the uid change apply per thread: another thread would stay unconfined."""
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise SandboxUnavailable("confine", f"the process has {threads} threads; confine must run in a "
                                            "single-threaded process (right after fork) or create a PID namespace")
