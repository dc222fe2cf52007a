"""Where evaluations run: ``local`` (a pool of warm sandbox workers) or ``ray`` (one Ray task per evaluation).

    with make_executor("local", task_spec="preference-synthetic", workers=2) as executor:
        result = executor.submit(EvalJob(code, EvalSetting(settings))).result()   # an EvalResult
"""

from __future__ import annotations

import dataclasses
import os
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
                  limits: SandboxLimits | None = None) -> Executor:
    """An executor (also a context manager). ``warm_settings``: task settings whose training data each worker
    loads at start. ``static_checks`` and ``limits`` are for tests and benchmarks."""
    from llm2.tasks import load_task

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

        return LocalExecutor(config, task, workers or os.cpu_count() or 1, static_checks)
    from llm2.execution.ray_executor import RayExecutor

    return RayExecutor(config, task, ray_address, ray_resources, static_checks)
