"""The environments of processes that run or fork candidate code: chosen by name, never inherited wholesale.

A worker (and a confined call, and the sandbox's preflight) gets only the variables it needs, by name: where to
find the interpreter, the caches and the GPUs, the locale, and the sandbox's own test switch. Nothing else reaches
it, whatever its name (``DATABASE_URL``, ``GH_PAT`` or the proposer's API key), nor the names of the host's other
variables. The candidate's process (``candidate_environment``) gets a fixed environment that holds nothing of the
host at all: set by ``confine`` before any candidate code runs.
"""

from __future__ import annotations

import ctypes
import os

from llm2.sandbox.layers import SIMULATE_ENV

THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
# what a worker may inherit, by exact name: it loads a task's training data from the cache and warms up
WORKER_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "TZ", "TMPDIR",
    "PYTHONPATH", "PYTHONHASHSEED", "VIRTUAL_ENV", "XDG_CACHE_HOME", "LLM2_CACHE_DIR", SIMULATE_ENV,
    "LLM2_WORLD_FINGERPRINT",  # names the training files; the secret itself (LLM2_WORLD_SECRET) never passes
    "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
    "TORCH_HOME", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "PYTORCH_CUDA_ALLOC_CONF", "LD_LIBRARY_PATH",
})


def worker_environment() -> dict[str, str]:
    """The variables of WORKER_NAMES that this process has, one torch thread each (workers share the cores).

    The world secret's fingerprint is published first if no task has done it yet (a worker started before any
    ``prepare`` would not find its training files); the secret itself never passes."""
    from llm2.task_api import world_secret

    if not os.environ.get(world_secret.FINGERPRINT_ENV):
        try:
            world_secret.fingerprint()  # this trusted process reads the secret and publishes its fingerprint
        except world_secret.WorldSecretError:
            pass  # unusable here: a task that needs it says so in one line when it prepares its world
    return {**{name: value for name, value in os.environ.items() if name in WORKER_NAMES}, **THREADS}


def stripped_environment() -> dict[str, str]:
    """The environment of a process that runs or forks candidate code (the name callers know it by)."""
    return worker_environment()


def candidate_environment(scratch: str) -> dict[str, str]:
    """The whole environment of a candidate's process: fixed, nothing of the host's."""
    return {"PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            **THREADS}


def replace_environment(scratch: str) -> None:
    """In the candidate's process, before its code runs: os.environ (and the C library's) become the fixed
    environment, and the block the process started with (its /proc/self/environ, the worker's at its start) is
    zeroed, so no name or value of it can be read back."""
    os.environ.clear()  # unsets each in the C library too
    os.environ.update(candidate_environment(scratch))
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # env_start, env_end: fields 50, 51 of stat
    except (OSError, IndexError, ValueError):
        return
    if 0 < start < end:
        ctypes.memset(start, 0, end - start)
