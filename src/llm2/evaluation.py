"""One evaluation of one loss at one setting, and the record it produces.

``evaluate_trusted`` runs in the calling process and is only for code llm2 ships (the catalog); candidate code
goes through ``llm2.sandbox`` which produces the same ``EvalResult``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from llm2.tasks.base import CandidateError, EvalSetting, LossFn, Metrics, Task

# The statuses a candidate can end in, and the stages at which it can stop (the cascade's order).
STATUSES = ("ok", "invalid", "failed", "timeout", "duplicate")
STAGES = ("static", "contract", "probe", "train", "score", "done")


@dataclass(frozen=True)
class EvalResult:
    status: str
    stage: str
    error: str | None = None
    metrics: Metrics | None = None
    seconds: float = 0.0
    loss_trace: tuple[float, ...] = field(default=(), repr=False)

    @property
    def fitness(self) -> float | None:
        return None if self.metrics is None else self.metrics.fitness


def evaluate_trusted(task: Task, fn: LossFn, setting: EvalSetting) -> EvalResult:
    """Contract checks, training and scoring in this process."""
    start = time.perf_counter()
    stage = "contract"
    try:
        task.prepare(setting)
        task.check_contract(fn)
        stage = "train"
        output = task.train(fn, setting)
        stage = "score"
        metrics = task.score(output, setting)
    except CandidateError as exc:
        return EvalResult("failed" if exc.stage in ("probe", "train") else "invalid", exc.stage, str(exc),
                          seconds=time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - report, never crash the caller
        return EvalResult("failed", stage, f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - start)
    if not math.isfinite(metrics.fitness):
        return EvalResult("failed", "score", "the score is not finite", seconds=time.perf_counter() - start)
    return EvalResult("ok", "done", None, metrics, time.perf_counter() - start, tuple(output.loss_trace))
