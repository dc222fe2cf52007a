"""Where evaluations run: ``local`` (a pool of warm sandbox workers) or ``ray`` (one Ray task per evaluation).

    with make_executor("local", task_spec="preference-synthetic", workers=2) as executor:
        result = executor.submit(EvalJob(code, EvalSetting(settings))).result()   # an EvalResult
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from llm2.evaluation import EvalJob
from llm2.execution.base import Executor
from llm2.sandbox.limits import SandboxLimits
from llm2.sandbox.worker import WorkerConfig

EXECUTORS = ("local", "ray")

__all__ = ["EXECUTORS", "EvalJob", "Executor", "make_executor"]


def make_executor(kind: str = "local", *, task_spec: str, task: Any = None, workers: int | None = None,
                  timeout_s: float = 60.0, cascade: bool = True, warm_settings: Any = None,
                  allow_missing: frozenset[str] = frozenset(), ray_address: str | None = None,
                  ray_resources: dict | None = None, static_checks: bool = True,
                  limits: SandboxLimits | None = None, keep_weights_dir: Path | None = None) -> Executor:
    """An executor (also a context manager). ``warm_settings``: task settings whose training data each worker
    loads at start; when the task's runtime for them uses GPUs, the local executor runs one worker per GPU
    (at most ``workers``), each seeing only its own through CUDA_VISIBLE_DEVICES. ``keep_weights_dir``: keep the
    weights of every scored job there, named by its key (local executor only). ``static_checks`` and ``limits``
    are for tests and benchmarks."""
    from llm2.task_api.registry import load_task

    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")
    if timeout_s <= 0:
        raise ValueError(f"the timeout must be positive, not {timeout_s:g} s")
    task = task if task is not None else load_task(task_spec)
    limits = SandboxLimits(timeout_s=timeout_s) if limits is None else limits
    warm = None if warm_settings is None else dataclasses.asdict(warm_settings)
    config = WorkerConfig(task_spec, limits, cascade, frozenset(allow_missing), warm)
    if kind == "local":
        from llm2.execution.local import LocalExecutor

        workers = workers or os.cpu_count() or 1
        gpus = task.runtime(warm_settings).gpus if warm_settings is not None else 0
        environments = gpu_environments(gpus)[:workers] if gpus > 0 else None
        return LocalExecutor(config, task, workers, static_checks, environments, keep_weights_dir)
    if keep_weights_dir is not None:
        raise ValueError("keeping trained weights (checkpoints) needs the local executor")
    from llm2.execution.ray_executor import RayExecutor

    return RayExecutor(config, task, ray_address, ray_resources, static_checks)


def gpu_environments(gpus: int) -> list[dict[str, str]]:
    """One environment per GPU, each making only that GPU visible; the GPUs this process may use (its own
    CUDA_VISIBLE_DEVICES, if set) are shared out, never others."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = [d.strip() for d in visible.split(",") if d.strip()] if visible is not None else \
        [str(i) for i in range(gpus)]
    return [{"CUDA_VISIBLE_DEVICES": device} for device in devices[:gpus]]
