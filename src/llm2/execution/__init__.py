"""Where evaluations run: ``local`` (a pool of warm sandbox workers) or ``ray`` (one Ray task per evaluation).

    with make_executor("local", task_name="preference-synthetic", workers=2) as executor:
        result = executor.submit(EvalJob(code, EvalSetting(beta=0.05))).result()   # an EvalResult
"""

from __future__ import annotations

import os

from llm2.execution.base import EvalJob, Executor
from llm2.sandbox.limits import SandboxLimits
from llm2.sandbox.worker import WorkerConfig

EXECUTORS = ("local", "ray")

__all__ = ["EXECUTORS", "EvalJob", "Executor", "make_executor"]


def make_executor(kind: str = "local", *, task_name: str, task_options: dict | None = None,
                  workers: int | None = None, timeout_s: float = 60.0, cascade: bool = True,
                  ray_address: str | None = None, ray_resources: dict | None = None,
                  static_checks: bool = True, limits: SandboxLimits | None = None) -> Executor:
    """An executor (also a context manager). ``static_checks`` and ``limits`` are for tests and benchmarks."""
    from llm2.tasks import get_task

    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, not {timeout_s}")
    limits = SandboxLimits(timeout_s=timeout_s) if limits is None else limits
    config = WorkerConfig(task_name, dict(task_options or {}), limits, cascade, static_checks)
    contract = get_task(task_name, **config.task_options).contract
    if kind == "local":
        from llm2.execution.local import LocalExecutor

        return LocalExecutor(config, contract, workers or os.cpu_count() or 1)
    from llm2.execution.ray_executor import RayExecutor

    return RayExecutor(config, contract, ray_address, ray_resources)
