"""A task's card: what readers of a run (leaderboard, report, heldout) need to know about its task without
importing it — the reference baseline, the fitness's name and the named numbers. Stored in the run's archive."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from llm2.task_api.base import MetricColumn, Task


@dataclass(frozen=True)
class TaskCard:
    name: str
    kind: str  # what a candidate is ("preference optimization loss")
    fitness_name: str
    reference_baseline: str
    metric_columns: tuple[MetricColumn, ...] = ()

    @classmethod
    def of(cls, task: Task, settings: Any = None) -> "TaskCard":
        texts = task.texts if settings is None else task.texts_for(settings)
        return cls(task.name, texts.kind, texts.fitness_name, task.reference_baseline, tuple(task.metric_columns))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TaskCard":
        columns = tuple(MetricColumn(**c) for c in data.get("metric_columns", ()))
        return cls(data["name"], data.get("kind", ""), data.get("fitness_name", "fitness"),
                   data.get("reference_baseline", ""), columns)
