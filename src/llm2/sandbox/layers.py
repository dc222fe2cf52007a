"""The sandbox's layers by name, the record of which took, and the fail-closed rule that applies them.

A layer that cannot be applied raises SandboxUnavailable unless the caller names it in ``allow_missing`` (the
user's explicit, recorded opt-out). LLM2_SANDBOX_SIMULATE_MISSING (comma-separated layer names) makes a layer
behave as if its system calls had failed: for tests; it can only take protection away together with the opt-out.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from llm2.sandbox.landlock import failure_text

LAYERS = ("process_group", "pid_namespace", "network_namespace", "mount_namespace", "rlimits", "landlock",
          "unprivileged_user", "capabilities", "seccomp")
# layers that take where the machine allows and are recorded either way, never required (``cgroup.py``)
OPTIONAL_LAYERS = ("cgroup",)
SIMULATE_ENV = "LLM2_SANDBOX_SIMULATE_MISSING"


class SandboxUnavailable(Exception):
    """A required layer could not be applied: the candidate must not run. ``layer`` is one of LAYERS, or "confine"
    for a precondition no opt-out covers."""

    def __init__(self, layer: str, reason: str):
        super().__init__(f"sandbox unavailable: {layer}: {reason}")
        self.layer = layer
        self.reason = reason


class Refused(Exception):
    """A layer's system call failed; the message is the reason."""


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
    seccomp_table: str = ""  # the architecture the filter was built for ("x86_64", "aarch64")
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


def layer_names(names: Iterable[str], what: str = "allow_missing", known: tuple[str, ...] = LAYERS) -> frozenset[str]:
    """Validate layer names (for ``allow_missing`` or the simulation variable); ValueError names the unknown one."""
    chosen = frozenset(n.strip() for n in names if n and n.strip())
    unknown = sorted(chosen - set(known))
    if unknown:
        raise ValueError(f"{what}: unknown sandbox layer {unknown[0]!r}; the layers are: {', '.join(known)}")
    return chosen


def simulated_missing() -> frozenset[str]:
    """The layers LLM2_SANDBOX_SIMULATE_MISSING asks ``confine`` (or, for the cgroup, the worker) to treat as
    unavailable."""
    return layer_names(os.environ.get(SIMULATE_ENV, "").split(","), SIMULATE_ENV, LAYERS + OPTIONAL_LAYERS)


class LayerRecorder:
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
            except (Refused, OSError) as exc:
                reason = reason_of(exc)
        if layer not in self.allow_missing:
            raise SandboxUnavailable(layer, reason)
        self.outcomes.append(LayerOutcome(layer, False, f"{reason} (allowed by the user's opt-out)"))
        return False


    def record_optional(self, layer: str, applied: bool, detail: str) -> None:
        """An optional layer's outcome (OPTIONAL_LAYERS): recorded, never raised for."""
        self.outcomes.append(LayerOutcome(layer, applied, detail))


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f" ({exc.filename})" if exc.filename else "")
    return str(exc) or type(exc).__name__


def errno_refusal(call: str) -> Refused:
    """Refused, with the reason the last libc call (through ctypes, errno kept) failed."""
    return Refused(failure_text(call, ctypes.get_errno()))
