"""``confine``: every layer applied to a freshly forked child, in order, before any candidate code is loaded.

It fails closed: a layer that cannot be applied raises SandboxUnavailable unless the caller names it in
``allow_missing`` (the user's explicit, recorded opt-out). The layers, in the order they are applied
(docs/security.md discusses each):

- process_group: its own session and process group, so a timeout kills everything it started;
- pid_namespace: a new PID namespace, whose first process runs the candidate, so no other process on the system
  can even be named: not the worker, not the other candidates (``namespaces.py``);
- network_namespace: a private network (no interface but a downed loopback) and System V IPC namespace;
- mount_namespace: a mount namespace and a root of its own holding only the read roots (read-only; the hidden
  paths are not among them, so absent), its devices, its own /proc and the scratch directory, a size-capped tmpfs
  (the total it can write) (``rootfs.py``);
- rlimits: address space (not in the CUDA profile), CPU seconds, file size, no core dumps, open files, threads
  (``rlimits.py``);
- landlock: read only beneath the resolved read roots and the process's own /proc entry; write only in the
  scratch directory (regular files and directories: no links, FIFOs, sockets or devices) and /dev/null; no TCP;
  no signals or abstract Unix sockets outside the sandbox (``filesystem.py``);
- unprivileged_user, capabilities: uid and gid 65534 as root, every capability set empty (``capabilities.py``);
- seccomp: a libseccomp allow-list of system calls, everything else EPERM (``seccomp.py``);
- cgroup (optional, recorded last, joined first): the group its worker made for it, capping memory (page cache,
  tmpfs and shared memory included) and processes; absent where none can be made, not a failure (``cgroup.py``).

Before seccomp the environment is replaced by a fixed one (``environment.py``): nothing of the host's reaches the
candidate.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from llm2.sandbox import cgroup as cgroups
from llm2.sandbox import handoff, landlock, seccomp
from llm2.sandbox.capabilities import become_unprivileged, clear_capabilities, drop_bounding_set
from llm2.sandbox.environment import replace_environment
from llm2.sandbox.filesystem import apply_landlock, names_a_process, resolved_hidden
from llm2.sandbox.layers import Defences, LayerRecorder, Refused, SandboxUnavailable, layer_names, reason_of, \
    simulated_missing
from llm2.sandbox.namespaces import CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWPID, die_with_parent, \
    fork_into_namespace, new_session, private_mount_namespace, require_single_thread, scratch_text, \
    scratch_tmpfs_options, unshare, user_namespace_for
from llm2.sandbox.rootfs import build_root
from llm2.sandbox.rlimits import SandboxLimits, set_rlimits

_PR_SET_DUMPABLE = 4


def prepare_worker() -> None:
    """In the warm worker: not dumpable, so a child without capabilities cannot read or write its memory; the
    seccomp binding loaded, so a child does not load it."""
    import ctypes

    ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    try:
        seccomp.binding()
    except seccomp.SeccompUnavailable:
        pass  # each child then finds out, and fails closed unless the user opted out


def confine(scratch: Path, limits: SandboxLimits, readable: list[str],
            allow_missing: frozenset[str] = frozenset(), hidden: Iterable[str] = (),
            handoff_fd: int | None = None, cgroup: cgroups.Cgroup | str | None = None) -> Defences:
    """Apply every layer to the calling (freshly forked) process; irreversible. Returns what took.

    Raises SandboxUnavailable when a layer cannot be applied and is not in ``allow_missing``; the caller must then
    not run candidate code (report the message instead). With the PID namespace this returns in a new process
    (the namespace's PID 1) that inherits every descriptor; the caller's process stays behind as its relay and
    never returns from here. ``hidden``: paths beneath the read roots the candidate must not see (already carved
    out of ``readable``), covered in its mount namespace as well. ``handoff_fd``: the child's end of the socket
    over which the scratch tmpfs goes to the worker (``handoff.py``), for a task whose output is read from it;
    closed here either way, before any candidate code. ``cgroup``: the group the worker made for this child, joined
    first so that every process of it is inside, or the reason there is none (recorded as absent); None: not
    recorded at all (a caller that offers no cgroup layer).
    """
    layers = LayerRecorder(layer_names(allow_missing), simulated_missing())
    joined = _join_cgroup(cgroup)
    scratch = Path(os.path.realpath(scratch))
    try:
        os.chdir(scratch)  # relative paths reach the scratch directory even where its parents are closed to nobody
    except OSError as exc:
        raise SandboxUnavailable("confine", f"cannot enter the scratch directory: {reason_of(exc)}") from None
    syscall_filter = _build_filter(limits)  # while every file is readable: libseccomp is loaded, the filter made
    parent = os.getppid()
    layers.apply("process_group", new_session)
    namespace_error = user_namespace_for(layers)
    in_new_pids = layers.apply("pid_namespace", lambda: unshare(CLONE_NEWPID, "PID", namespace_error))
    layers.apply("network_namespace", lambda: unshare(CLONE_NEWNET | CLONE_NEWIPC, "network and IPC",
                                                      namespace_error))
    die_with_parent(None, parent)  # set after the namespaces: a credential change clears it
    liveness = fork_into_namespace(limits) if in_new_pids else None
    if liveness is not None:
        die_with_parent(liveness)  # a forked child does not inherit the parent-death signal
    if not in_new_pids:
        require_single_thread()
    # in the final process, so that its /proc shows its own PID namespace
    hidden = resolved_hidden(hidden)
    mounted = layers.apply("mount_namespace",
                           lambda: _mount_namespace(scratch, limits, readable, hidden, namespace_error))
    if mounted and handoff_fd is not None and handoff_fd >= 0 and limits.scratch_bytes:
        try:
            handoff.send_scratch(handoff_fd, scratch)
        except OSError as exc:
            raise SandboxUnavailable("mount_namespace", f"the scratch could not be handed to the worker: "
                                                        f"{reason_of(exc)}") from None
    else:
        handoff.close_unsent(handoff_fd)
    own_proc = os.path.realpath("/proc/self")  # resolved here, in the final process: its own entry, no other
    roots = [r for r in readable if not names_a_process(r)] + [own_proc]
    if len(roots) != len(readable) + 1:
        layers.notes.append("dropped other processes' /proc entries from the read roots")

    applied_rlimits: list[str] = []
    layers.apply("rlimits", lambda: set_rlimits(limits, applied_rlimits))
    locked: list[landlock.LandlockResult] = []
    layers.apply("landlock", lambda: apply_landlock(roots + list(limits.device_read_roots), scratch, locked,
                                                    limits.device_files))
    bounding_dropped = "capabilities" not in layers.simulated and drop_bounding_set()
    layers.apply("unprivileged_user", lambda: become_unprivileged(scratch, roots, layers.notes))
    layers.apply("capabilities", lambda: clear_capabilities(bounding_dropped))
    die_with_parent(liveness, parent)  # changing the uid cleared the parent-death signal: set it again
    if liveness is not None:
        os.close(liveness)
    replace_environment(str(scratch))
    table: list[str] = []
    layers.apply("seccomp", lambda: _load_filter(syscall_filter, table))
    if joined is not None:
        layers.record_optional("cgroup", *joined)

    uids, gids = os.getresuid(), os.getresgid()
    lock = locked[0] if locked else None
    return Defences(tuple(layers.outcomes), uids[0] if len(set(uids)) == 1 else -1,
                    gids[0] if len(set(gids)) == 1 else -1, tuple(applied_rlimits),
                    lock.abi if lock else 0, lock.features if lock else (), table[0] if table else "",
                    tuple(layers.notes))


def _join_cgroup(cgroup: cgroups.Cgroup | str | None) -> tuple[bool, str] | None:
    """Into the worker-made group while still root and alone; (took, detail) to record, None when none offered."""
    if cgroup is None:
        return None
    if isinstance(cgroup, str):
        return False, cgroup
    try:
        return True, cgroups.join(cgroup)
    except OSError as exc:
        return False, f"could not join {cgroup.paths[0]}: {reason_of(exc)}"


def _mount_namespace(scratch: Path, limits: SandboxLimits, readable: list[str], hidden: list[str],
                     namespace_error: str | None) -> str:
    """Its own mount namespace and root: the read roots (hidden paths already carved out, so absent), devices,
    /proc, and the scratch, a size-capped tmpfs or the directory on disk. Checked: no hidden path is there."""
    made = private_mount_namespace(namespace_error)
    roots = [r for r in readable if not names_a_process(r)] + list(limits.device_read_roots)
    built = build_root(scratch, roots, limits.device_files, scratch_tmpfs_options(limits))
    present = [path for path in hidden if os.path.lexists(path)]
    if present:
        raise Refused(f"the hidden path {present[0]} is in the child's root")
    return f"{made}; {built}; {scratch_text(limits)}"


def _build_filter(limits: SandboxLimits) -> Any:
    """The filter, or the exception that says why there is none (raised when the seccomp layer is applied)."""
    try:
        return seccomp.build(seccomp.FilterSpec(any_ioctl=bool(limits.device_files)))
    except seccomp.SeccompUnavailable as exc:
        return exc


def _load_filter(syscall_filter: Any, table: list[str]) -> str:
    if isinstance(syscall_filter, Exception):
        raise syscall_filter
    try:
        syscall_filter.load()
    except OSError as exc:
        raise seccomp.SeccompUnavailable(exc.errno or 0, f"the kernel refused the filter: {exc}") from None
    table.append(os.uname().machine)
    return f"allow-list for {table[0]} ({len(seccomp.ALLOWED)} calls and a few with argument checks)"
