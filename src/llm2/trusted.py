"""``evaluate_trusted``: contract checks, training and scoring in the calling process, for code llm2 or the user
ships (the catalog's own baselines in benchmarks and tests of a task), where no untrusted code is involved.
Candidate code never comes here: it goes through ``llm2.execution`` and gets the same ``EvalResult``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from llm2.evaluation import EvalResult
from llm2.task_api.base import CandidateError, EvalSetting, Task


def evaluate_trusted(task: Task, function: Callable[..., Any] | str, setting: EvalSetting) -> EvalResult:
    """Contract checks, training and scoring in this process, for trusted code (a function, or code text)."""
    from llm2.sandbox.loader import load_function

    start = time.perf_counter()
    stage = "contract"
    try:
        task.prepare(setting.task)
        data = task.training_data(setting.task)
        fn = load_function(function, task.contract) if isinstance(function, str) else function
        task.check_contract(fn, data)
        stage = "train"
        output = task.train(fn, data, setting)
        if output.stop_reason:
            return EvalResult("failed", "train", output.stop_reason, seconds=time.perf_counter() - start)
        stage = "score"
        metrics = task.scorer(setting.task).score(output)
    except CandidateError as exc:
        return EvalResult("failed" if exc.stage in ("probe", "train") else "invalid", exc.stage, str(exc),
                          seconds=time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - report, never crash the caller
        return EvalResult("failed", stage, f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - start)
    if not math.isfinite(metrics.fitness):
        return EvalResult("failed", "score", "the score is not finite", seconds=time.perf_counter() - start)
    return EvalResult("ok", "done", None, metrics, time.perf_counter() - start, tuple(output.loss_trace))
