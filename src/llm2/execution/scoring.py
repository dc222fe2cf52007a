"""The trusted half of an evaluation: scoring what a candidate's process handed back.

A ``ScoringSide`` lives in the process that drives the workers (the discovery process, or a Ray task's process),
never in a worker or a candidate's process: it alone loads the task's scoring data. It judges the cascade's probe
and scores the final weights; it never imports candidate code.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from llm2.evaluation import EvalJob
from llm2.task_api.base import Metrics, Task, TrainOutput


class ScoringSide:
    """The scoring side of every evaluation this process drives: one lock around the task's ``Scorer``s."""

    def __init__(self, task: Task):
        self.task = task
        self._lock = threading.Lock()  # the handles of a local executor score from several threads

    def scorer(self, settings: Any):
        with self._lock:
            return self.task.scorer(settings)

    def judge_probe(self, job: EvalJob, output: TrainOutput) -> tuple[str | None, float | None]:
        """(why the run should stop, or None; the probe's fitness)."""
        scorer = self.scorer(job.setting.task)
        try:
            metrics = scorer.score(output, quick=True)
        except Exception as exc:  # noqa: BLE001 - weights that cannot be scored end the run, with the reason
            return f"the probe's weights could not be scored: {type(exc).__name__}: {exc}", None
        reason = self.task.collapse_reason(metrics, scorer.reference_metrics(), job.baseline_probe)
        return reason, metrics.fitness

    def score(self, job: EvalJob, output: TrainOutput) -> tuple[Metrics | None, str | None]:
        """(metrics, None) or (None, why the weights could not be scored)."""
        try:
            metrics = self.scorer(job.setting.task).score(output)
        except Exception as exc:  # noqa: BLE001
            return None, f"score: the weights could not be scored: {type(exc).__name__}: {exc}"
        if not math.isfinite(metrics.fitness):
            return None, "score: the score is not finite"
        return plain(metrics), None


def plain(metrics: Metrics) -> Metrics:
    """Plain floats only, so results cross process boundaries as JSON unchanged."""
    return Metrics(float(metrics.fitness), {str(k): float(v) for k, v in metrics.values.items()})
