"""What a confined child may consume: the limits record, the rlimits layer, and the words for a limit's signal."""

from __future__ import annotations

import math
import os
import resource
import signal
from dataclasses import dataclass, replace

from llm2.sandbox.layers import Refused, reason_of

GIB = 1 << 30
MIB = 1 << 20
# A spawned child starts an interpreter, imports the task's libraries, loads its training data and warms up, all
# trusted and before it confines itself: the candidate's clock starts at its first message, within this allowance.
SPAWN_STARTUP_S = 900.0


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 60.0  # wall clock, from fork to the final result (time the worker spends scoring excluded)
    memory_bytes: int = 4 * GIB  # address space the child may add to what the warm worker already maps
    output_bytes: int = 1 << 20  # largest file the child may write, its captured stdout and stderr included
    open_files: int = 256
    # threads (processes are forbidden) of the child's user: it is the only process of uid 65534 that llm2 makes,
    # but several workers' children may share that uid, so this is a ceiling for a runaway, not a tight budget
    processes: int = 512
    # all files in the scratch together: it is a tmpfs of this size in the child's own mount namespace. 0: the
    # scratch stays a directory on disk (a task whose output the worker reads from the scratch needs that)
    scratch_bytes: int = 256 * MIB
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


def _address_space_in_use() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def set_rlimits(limits: SandboxLimits, applied: list[str]) -> str:
    """The rlimits layer: each limit lowered (never raised above a stricter one set before us); names what took."""
    wanted = {
        "RLIMIT_AS": _address_space_in_use() + limits.memory_bytes if limits.cap_address_space else None,
        "RLIMIT_CPU": limits.cpu_seconds,
        "RLIMIT_FSIZE": limits.output_bytes,
        "RLIMIT_CORE": 0,
        "RLIMIT_NOFILE": limits.open_files,
        "RLIMIT_NPROC": limits.processes,
        "RLIMIT_MEMLOCK": 0,  # nothing pinned in memory beyond the kernel's accounting
        "RLIMIT_MSGQUEUE": 0,
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
            raise Refused(f"setrlimit({name}) failed: {reason_of(exc)}") from None
        applied.append(name)
    return ", ".join(applied)


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
