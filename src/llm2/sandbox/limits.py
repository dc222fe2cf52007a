"""The sandbox's public names, where the rest of llm2 has always imported them from.

Each job lives in a module of its own: the limits record and rlimits (``rlimits.py``), the layers' names and
records (``layers.py``), namespaces and the relay (``namespaces.py``), the read roots and Landlock
(``filesystem.py``, ``landlock.py``), identity and capabilities (``capabilities.py``), the system-call allow-list
(``seccomp.py``), the orchestration (``confine.py``), ending a child (``processes.py``).
"""

from __future__ import annotations

from llm2.sandbox.capabilities import UNPRIVILEGED_ID
from llm2.sandbox.confine import confine, prepare_worker
from llm2.sandbox.filesystem import read_roots
from llm2.sandbox.layers import LAYERS, SIMULATE_ENV, Defences, LayerOutcome, SandboxUnavailable, layer_names, \
    simulated_missing
from llm2.sandbox.processes import end_child, kill_group
from llm2.sandbox.rlimits import GIB, MIB, NVIDIA_DEVICE_GLOB, NVIDIA_READ_ROOTS, SPAWN_STARTUP_S, SandboxLimits, \
    bytes_text, cuda_limits, last_line_of, signal_reason

__all__ = ["GIB", "LAYERS", "MIB", "NVIDIA_DEVICE_GLOB", "NVIDIA_READ_ROOTS", "SIMULATE_ENV", "SPAWN_STARTUP_S",
           "UNPRIVILEGED_ID", "Defences", "LayerOutcome", "SandboxLimits", "SandboxUnavailable", "bytes_text",
           "confine", "cuda_limits", "end_child", "kill_group", "last_line_of", "layer_names", "prepare_worker",
           "read_roots", "signal_reason", "simulated_missing"]
