"""Operating-system confinement of a forked child, and killing it for good.

``confine`` runs in the child right after the fork, before any candidate code is loaded, and fails closed: every
layer in LAYERS is applied, and one that cannot be raises SandboxUnavailable unless the caller names it in
``allow_missing`` (the user's explicit, recorded opt-out). The layers, in the order they are applied
(docs/security.md discusses each):

- process_group: its own session and process group, so a timeout kills everything it started;
- pid_namespace: a new PID namespace, whose first process runs the candidate (see below), so no other process on
  the system can even be named: not the worker, not the other candidates;
- network_namespace: a private network (no interface but a downed loopback) and System V IPC namespace;
- rlimits: address space (not in the CUDA profile, ``cuda_limits``), CPU seconds, file size (caps stdout/stderr
  and any file), no core dumps, open files;
- landlock: read only beneath the read roots and the process's own /proc entry; write only in the scratch
  directory and /dev/null (and, in the CUDA profile, the NVIDIA device files); no TCP; no signals or abstract Unix
  sockets outside the sandbox;
- unprivileged_user: as root, uid and gid 65534 (nobody) without supplementary groups; the scratch directory is
  handed to that uid. Not root: already unprivileged (a user namespace that maps the user to itself provides the
  namespaces);
- capabilities: every set empty (bounding, permitted, effective, inheritable, ambient), checked after the fact;
- seccomp: no new processes or programs, no sockets, nothing that acts on another process (``seccomp.py``).

The PID namespace needs one more fork: ``unshare(CLONE_NEWPID)`` only places the caller's children in it. The
forked child becomes a relay that runs no candidate code: it waits for its own child (PID 1 of the namespace, the
one that returns from ``confine``) and exits with the same status, re-raising the same signal. Both stay in the
process group the worker kills; each dies with its parent (PR_SET_PDEATHSIG), so killing the worker kills both.

LLM2_SANDBOX_SIMULATE_MISSING (comma-separated layer names) makes ``confine`` behave as if those layers' system
calls had failed: the candidate is refused, or, for layers also in ``allow_missing``, runs without them. It is for
tests; it can only take protection away together with the explicit opt-out.
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import re
import resource
import select
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from llm2.sandbox import landlock, seccomp

GIB = 1 << 30
# A spawned child starts an interpreter, imports the task's libraries, loads its training data and warms up, all
# trusted and before it confines itself: the candidate's clock starts at its first message, within this allowance.
SPAWN_STARTUP_S = 900.0
LAYERS = ("process_group", "pid_namespace", "network_namespace", "rlimits", "landlock", "unprivileged_user",
          "capabilities", "seccomp")
SIMULATE_ENV = "LLM2_SANDBOX_SIMULATE_MISSING"
UNPRIVILEGED_ID = 65534  # nobody / nogroup: owns no file outside the scratch directory

_CLONE_NEWNET, _CLONE_NEWIPC, _CLONE_NEWUSER, _CLONE_NEWPID = 0x40000000, 0x08000000, 0x10000000, 0x20000000
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT = 1, 4, 24, 38, 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAPABILITY_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 60.0  # wall clock, from fork to the final result (time the worker spends scoring excluded)
    memory_bytes: int = 4 * GIB  # address space the child may add to what the warm worker already maps
    output_bytes: int = 1 << 20  # largest file the child may write, its captured stdout and stderr included
    open_files: int = 256
    term_grace_s: float = 0.5  # between SIGTERM and SIGKILL
    # The CUDA profile (``cuda_limits``): CUDA reserves terabytes of virtual address space, so an address-space cap
    # makes it fail; device files the child may open for reading, writing and ioctl; extra trees it may read.
    cap_address_space: bool = True
    device_files: tuple[str, ...] = ()
    device_read_roots: tuple[str, ...] = ()

    @property
    def cpu_seconds(self) -> int:
        return math.ceil(self.timeout_s) + 1

    @classmethod
    def from_dict(cls, values: dict) -> "SandboxLimits":
        """From ``asdict`` sent as JSON (lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# What the NVIDIA driver opens when CUDA starts: its device files (read, write, ioctl) and the trees it reads.
NVIDIA_DEVICE_GLOB = "/dev/nvidia*"
NVIDIA_READ_ROOTS = ("/proc/driver/nvidia", "/sys/bus/pci", "/sys/devices", "/dev/nvidia-caps")


def cuda_limits(limits: SandboxLimits) -> SandboxLimits:
    """``limits`` for a child that uses a GPU: the same timeout, file-size, open-file and CPU limits, every other
    layer unchanged, but no address-space cap (CUDA cannot start under one; host memory is then bounded only by
    the machine) and the NVIDIA device files usable. Only a freshly spawned child can use CUDA at all."""
    import glob

    devices = tuple(sorted(path for path in glob.glob(NVIDIA_DEVICE_GLOB) if not os.path.isdir(path)))
    return replace(limits, cap_address_space=False, device_files=devices, device_read_roots=NVIDIA_READ_ROOTS)


class SandboxUnavailable(Exception):
    """A required layer could not be applied: the candidate must not run. ``layer`` is one of LAYERS, or "confine"
    for a precondition no opt-out covers."""

    def __init__(self, layer: str, reason: str):
        super().__init__(f"sandbox unavailable: {layer}: {reason}")
        self.layer = layer
        self.reason = reason


@dataclass(frozen=True)
class LayerOutcome:
    layer: str
    applied: bool
    detail: str  # what took, or why it is missing


@dataclass(frozen=True)
class Defences:
    """What ``confine`` applied in this process, layer by layer."""

    layers: tuple[LayerOutcome, ...] = ()
    uid: int = -1  # real, effective and saved uid once confined
    gid: int = -1
    rlimits: tuple[str, ...] = ()
    landlock_abi: int = 0
    landlock_features: tuple[str, ...] = ()
    seccomp_table: str = ""  # the syscall table the filter was built for ("x86_64", "aarch64")
    notes: tuple[str, ...] = field(default=())

    @property
    def applied(self) -> tuple[str, ...]:
        return tuple(o.layer for o in self.layers if o.applied)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(o.layer for o in self.layers if not o.applied)

    def as_dict(self) -> dict:
        """Plain JSON types, for the channel and the archive."""
        record = asdict(self)
        record["layers"] = {o.layer: {"applied": o.applied, "detail": o.detail} for o in self.layers}
        record["applied"], record["missing"] = list(self.applied), list(self.missing)
        return record


def layer_names(names: Iterable[str], what: str = "allow_missing") -> frozenset[str]:
    """Validate layer names (for ``allow_missing`` or the simulation variable); ValueError names the unknown one."""
    chosen = frozenset(n.strip() for n in names if n and n.strip())
    unknown = sorted(chosen - set(LAYERS))
    if unknown:
        raise ValueError(f"{what}: unknown sandbox layer {unknown[0]!r}; the layers are: {', '.join(LAYERS)}")
    return chosen


def simulated_missing() -> frozenset[str]:
    """The layers LLM2_SANDBOX_SIMULATE_MISSING asks ``confine`` to treat as unavailable."""
    return layer_names(os.environ.get(SIMULATE_ENV, "").split(","), SIMULATE_ENV)


def read_roots(exclude: Iterable[str] = ()) -> list[str]:
    """Directories the child may read: the interpreter, installed packages, llm2 itself and system libraries.

    Deliberately absent: the world cache, the working directory, home, /etc and /tmp (but the scratch directory),
    and /proc beyond the child's own entry (which ``confine`` adds, resolved in the child itself). Whatever the
    child can read it could put into an error message, which reaches the proposer. ``exclude``: paths beneath the
    roots the child must not read (a task's data shipped inside a package, say); Landlock grants whole trees, so a
    root that holds one is replaced by its other entries, down to the excluded path.
    """
    import llm2

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             str(Path(llm2.__file__).resolve().parent)}
    roots.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")) or p.endswith("lib-dynload"))
    roots.update({"/usr", "/lib", "/lib64", "/lib32", "/sys/devices/system/cpu", "/proc/cpuinfo",
                  "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"})
    # from /etc only what the dynamic loader and time functions read: not /etc as a whole (shadow, keys)
    roots.update({"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"})
    resolved = {os.path.realpath(r) for r in roots if r and os.path.exists(r)}
    for hidden in (os.path.realpath(p) for p in exclude):
        resolved = set(_without(resolved, hidden))
    return sorted(resolved)


def _without(roots: Iterable[str], hidden: str) -> Iterator[str]:
    """The roots with ``hidden`` carved out: each root above it is replaced by its entries that do not hold it."""
    for root in roots:
        if root == hidden:
            continue
        if not hidden.startswith(root.rstrip("/") + "/"):
            yield root
            continue
        for entry in sorted(os.listdir(root)):
            path = os.path.join(root, entry)
            if hidden == path or hidden.startswith(path + "/"):
                yield from _without([path], hidden)
            else:
                yield path


def prepare_worker() -> None:
    """In the warm worker: not dumpable, so a child without capabilities cannot read or write its memory."""
    _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


# -- confine -----------------------------------------------------------------------------------------------------
class _Refused(Exception):
    """A layer's system call failed; the message is the reason."""


class _Layers:
    """Applies layers one by one and keeps the record; raises for a missing layer the user did not allow."""

    def __init__(self, allow_missing: frozenset[str], simulated: frozenset[str]):
        self.allow_missing, self.simulated = allow_missing, simulated
        self.outcomes: list[LayerOutcome] = []
        self.notes: list[str] = []

    def apply(self, layer: str, action: Callable[[], str]) -> bool:
        if layer in self.simulated:
            reason = f"simulated as missing by {SIMULATE_ENV}"
        else:
            try:
                self.outcomes.append(LayerOutcome(layer, True, action()))
                return True
            except (_Refused, OSError) as exc:
                reason = _reason(exc)
        if layer not in self.allow_missing:
            raise SandboxUnavailable(layer, reason)
        self.outcomes.append(LayerOutcome(layer, False, f"{reason} (allowed by the user's opt-out)"))
        return False


def confine(scratch: Path, limits: SandboxLimits, readable: list[str],
            allow_missing: frozenset[str] = frozenset()) -> Defences:
    """Apply every layer to the calling (freshly forked) process; irreversible. Returns what took.

    Raises SandboxUnavailable when a layer cannot be applied and is not in ``allow_missing``; the caller must then
    not run candidate code (report the message instead). With the PID namespace this returns in a new process
    (the namespace's PID 1) that inherits every descriptor; the caller's process stays behind as its relay and
    never returns from here.
    """
    layers = _Layers(layer_names(allow_missing), simulated_missing())
    scratch = Path(os.path.realpath(scratch))
    try:
        os.chdir(scratch)  # relative paths reach the scratch directory even where its parents are closed to nobody
    except OSError as exc:
        raise SandboxUnavailable("confine", f"cannot enter the scratch directory: {_reason(exc)}") from None
    parent = os.getppid()
    layers.apply("process_group", _new_session)
    namespace_error = _user_namespace_for(layers)
    in_new_pids = layers.apply("pid_namespace", lambda: _unshare(_CLONE_NEWPID, "PID", namespace_error))
    layers.apply("network_namespace", lambda: _unshare(_CLONE_NEWNET | _CLONE_NEWIPC, "network and IPC",
                                                       namespace_error))
    _die_with_parent(None, parent)  # set after the namespaces: a credential change clears it
    liveness = _fork_into_namespace(limits) if in_new_pids else None
    if liveness is not None:
        _die_with_parent(liveness)  # a forked child does not inherit the parent-death signal
    if not in_new_pids:
        _require_single_thread()
    own_proc = os.path.realpath("/proc/self")  # resolved here, in the final process: its own entry, no other
    roots = [r for r in readable if not _names_a_process(r)] + [own_proc]
    if len(roots) != len(readable) + 1:
        layers.notes.append("dropped other processes' /proc entries from the read roots")

    applied_rlimits: list[str] = []
    layers.apply("rlimits", lambda: _set_rlimits(limits, applied_rlimits))
    locked: list[landlock.LandlockResult] = []
    layers.apply("landlock", lambda: _landlock(roots + list(limits.device_read_roots), scratch, locked,
                                               list(limits.device_files)))
    bounding_dropped = "capabilities" not in layers.simulated and _drop_bounding_set()
    layers.apply("unprivileged_user", lambda: _become_unprivileged(scratch, roots, layers.notes))
    layers.apply("capabilities", lambda: _clear_capabilities(bounding_dropped))
    _die_with_parent(liveness, parent)  # changing the uid cleared the parent-death signal: set it again
    if liveness is not None:
        os.close(liveness)
    table: list[str] = []
    layers.apply("seccomp", lambda: _seccomp(table))

    uids, gids = os.getresuid(), os.getresgid()
    lock = locked[0] if locked else None
    return Defences(tuple(layers.outcomes), uids[0] if len(set(uids)) == 1 else -1,
                    gids[0] if len(set(gids)) == 1 else -1, tuple(applied_rlimits),
                    lock.abi if lock else 0, lock.features if lock else (), table[0] if table else "",
                    tuple(layers.notes))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f" ({exc.filename})" if exc.filename else "")
    return str(exc) or type(exc).__name__


def _errno_text(call: str) -> _Refused:
    return _Refused(landlock.failure_text(call, ctypes.get_errno()))


def _new_session() -> str:
    try:
        os.setsid()
    except PermissionError:
        if os.getpgid(0) != os.getpid():
            raise _Refused("setsid failed: EPERM, and the process does not lead its own process group") from None
        return "already leads its own session or process group"
    return "own session and process group"


def _die_with_parent(liveness: int | None = None, parent: int | None = None) -> None:
    """PR_SET_PDEATHSIG, then make sure the parent did not die before it took (we would be an orphan)."""
    if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise SandboxUnavailable("process_group", str(_errno_text("prctl(PR_SET_PDEATHSIG)")))
    if liveness is not None:
        if select.select([liveness], [], [], 0)[0]:  # the relay's end closed: it is gone
            os._exit(1)
    elif parent is not None and os.getppid() != parent:
        os._exit(1)


def _user_namespace_for(layers: _Layers) -> str | None:
    """Not root: the PID and network namespaces need a user namespace of our own. Returns why it failed, if it did."""
    if os.geteuid() == 0 or {"pid_namespace", "network_namespace"} <= layers.simulated:
        return None
    uid, gid = os.geteuid(), os.getegid()
    if _libc.unshare(_CLONE_NEWUSER) != 0:
        return str(_errno_text("unshare(CLONE_NEWUSER), which a user without privileges needs for it,"))
    # a non-dumpable process (the worker is one) has /proc/self owned by root: dumpable while writing its maps
    _libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)
    try:  # map the user to itself, so files keep their owner and the uid stays what it was
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)
    except OSError as exc:
        return f"writing the user namespace's id maps failed: {_reason(exc)}"
    finally:
        _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    layers.notes.append(f"in a user namespace of its own (uid {uid} mapped to itself)")
    return None


def _unshare(flags: int, what: str, namespace_error: str | None) -> str:
    if namespace_error:
        raise _Refused(namespace_error)
    if _libc.unshare(flags) != 0:
        raise _errno_text(f"unshare (new {what} namespace)")
    return f"new {what} namespace"


def _fork_into_namespace(limits: SandboxLimits) -> int:
    """Fork into the new PID namespace. Returns, in the child (its PID 1), the read end of a pipe that reports the
    relay's death; the caller's process becomes the relay and never returns."""
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        raise SandboxUnavailable("pid_namespace", f"fork into the new namespace failed: {_reason(exc)}") from None
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


def _require_single_thread() -> None:
    """Landlock, capabilities and the uid change apply per thread: another thread would stay unconfined."""
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise SandboxUnavailable("confine", f"the process has {threads} threads; confine must run in a "
                                            "single-threaded process (right after fork) or create a PID namespace")


def _names_a_process(path: str) -> bool:
    return re.fullmatch(r"/proc/(self|thread-self|\d+)(/.*)?", path) is not None


def _address_space_in_use() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _set_rlimits(limits: SandboxLimits, applied: list[str]) -> str:
    wanted = {
        "RLIMIT_AS": _address_space_in_use() + limits.memory_bytes if limits.cap_address_space else None,
        "RLIMIT_CPU": limits.cpu_seconds,
        "RLIMIT_FSIZE": limits.output_bytes,
        "RLIMIT_CORE": 0,
        "RLIMIT_NOFILE": limits.open_files,
    }
    for name, value in wanted.items():
        if value is None:  # not capped by this profile
            continue
        kind = getattr(resource, name)
        _, current_hard = resource.getrlimit(kind)
        hard = value + 1 if name == "RLIMIT_CPU" else value  # SIGXCPU first, SIGKILL a second later
        if current_hard != resource.RLIM_INFINITY:  # a stricter limit set before us stays
            value, hard = min(value, current_hard), min(hard, current_hard)
        try:
            resource.setrlimit(kind, (value, hard))
        except (ValueError, OSError) as exc:
            raise _Refused(f"setrlimit({name}) failed: {_reason(exc)}") from None
        applied.append(name)
    return ", ".join(applied)


def _landlock(roots: list[str], scratch: Path, locked: list[landlock.LandlockResult],
              devices: list[str] = ()) -> str:
    result = landlock.restrict(roots, [str(scratch), "/dev/null", *devices])
    locked.append(result)
    return f"ABI {result.abi}: {', '.join(result.features)}"


def _become_unprivileged(scratch: Path, roots: list[str], notes: list[str]) -> str:
    if os.geteuid() != 0:
        return f"already unprivileged (uid {os.getuid()})"
    closed = [root for root in roots if not _open_to_others(root)]
    if closed:  # e.g. an interpreter under /root: what the worker has not imported from there stays out of reach
        notes.append(f"uid {UNPRIVILEGED_ID} cannot read {', '.join(closed[:3])}{' ...' if len(closed) > 3 else ''} "
                     "(a directory on the way is closed to other users): only modules the worker already "
                     "imported from there can be used")
    os.chown(scratch, UNPRIVILEGED_ID, UNPRIVILEGED_ID)  # the one directory it may write
    _no_new_privileges()  # no set-user-ID program can lead back to root, even where seccomp is opted out
    os.setgroups([])
    os.setresgid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
    os.setresuid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
    if set(os.getresuid()) != {UNPRIVILEGED_ID} or set(os.getresgid()) != {UNPRIVILEGED_ID} or os.getgroups():
        raise _Refused(f"the uid or gid did not change to {UNPRIVILEGED_ID}")
    return f"uid and gid {UNPRIVILEGED_ID}, no groups (was root)"


def _open_to_others(path: str) -> bool:
    """Whether a user who owns nothing and is in no group can read ``path``: every directory on the way open to
    others for search, the path itself for reading."""
    try:
        parts = Path(path).parts
        for depth in range(1, len(parts)):
            if not os.stat(Path(*parts[:depth])).st_mode & 0o001:
                return False
        return bool(os.stat(path).st_mode & 0o004)
    except OSError:
        return True  # absent: nothing to read either way


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_bounding_set() -> bool:
    """Before the uid changes (it needs CAP_SETPCAP, which the change takes away): empty the bounding set."""
    for capability in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            return ctypes.get_errno() == errno.EINVAL  # EINVAL: past the last capability this kernel knows
    return True


def _no_new_privileges() -> None:
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _errno_text("prctl(PR_SET_NO_NEW_PRIVS)")


def _clear_capabilities(bounding_dropped: bool) -> str:
    _no_new_privileges()  # nothing executed later may gain what is dropped here
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    if _libc.capset(ctypes.byref(header), (_CapData * 2)()) != 0:
        raise _errno_text("capset")
    sets = _capability_sets()
    left = {name: value for name, value in sets.items() if value and name != "CapBnd"}
    if left:
        held = ", ".join(f"{name} {value:#x}" for name, value in left.items())
        raise _Refused(f"capabilities remain after dropping them: {held}")
    if sets.get("CapBnd"):
        if bounding_dropped or os.geteuid() == 0:
            raise _Refused(f"the bounding set kept {sets['CapBnd']:#x}")
        # no CAP_SETPCAP to empty it: harmless, since only exec (forbidden, and no_new_privs) could draw on it
        return "permitted, effective, inheritable and ambient sets empty; the bounding set stays (no CAP_SETPCAP)"
    return "all five sets empty"


def _capability_sets() -> dict[str, int]:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {name: int(fields[name].strip(), 16) for name in _CAPABILITY_SETS if name in fields}


def _seccomp(table: list[str]) -> str:
    table.append(seccomp.install())
    return f"filter for {table[0]}"


# -- ending a child ----------------------------------------------------------------------------------------------
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


_SIGNAL_REASONS = {
    signal.SIGXFSZ: "it wrote more than the output limit of {output} (stdout, stderr or a file)",
    signal.SIGXCPU: "it used more than the CPU-time limit of {cpu} s",
    signal.SIGKILL: "it was killed (SIGKILL: the memory or CPU limit, or the system's out-of-memory killer)",
    signal.SIGSEGV: "it crashed (SIGSEGV: segmentation fault, e.g. a C-level stack overflow)",
    signal.SIGABRT: "it aborted (SIGABRT)",
    signal.SIGSYS: "it made a forbidden system call (SIGSYS)",
}


def signal_reason(number: int, limits: SandboxLimits) -> str:
    """Why a confined process that died of signal ``number`` died, in the words of its limits."""
    template = _SIGNAL_REASONS.get(number, f"it was killed by signal {number}")
    return template.format(output=bytes_text(limits.output_bytes), cpu=limits.cpu_seconds)


def last_line_of(stderr: str) -> str:
    """The last line a confined process wrote to stderr (its error, as a rule), for a one-line reason."""
    return (stderr.strip().splitlines() or ["no output"])[-1][:300]


def bytes_text(count: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:g} {unit}"
    return f"{count} bytes"
