"""The records the archive hands out: a run, its candidates, its conversation, its extra evaluations."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RUN_STATUSES = ("running", "finished", "stopped", "failed")
CANDIDATE_STATUSES = ("pending", "ok", "invalid", "failed", "timeout", "duplicate", "baseline")


def metric_value(metrics: dict, key: str) -> float | None:
    """One of the task's named numbers (a MetricColumn's key) as a float, or None."""
    value = metrics.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class ArchiveError(Exception):
    """The archive is missing, not an llm2 archive, corrupt, or was asked something impossible."""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    task: str
    proposer: str
    model: str
    config: dict
    seeds: dict
    versions: dict
    started_at: float
    finished_at: float | None
    status: str  # running | finished | stopped | failed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CandidateRecord:
    id: int
    generation: int
    index: int  # order of proposal in the run (0, 1, 2...)
    proposer: str
    thought: str
    name: str
    code: str
    code_hash: str
    status: str  # pending | ok | invalid | failed | timeout | duplicate | baseline
    stage: str | None
    error: str | None
    duplicate_of: int | None
    fitness: float | None
    fitness_std: float | None
    metrics: dict  # the task's named numbers (means over seeds; "<name>_std" their spread) and run bookkeeping
    seconds: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    reply_events: tuple[str, ...]  # repairs / re-asks recorded for this reply
    feedback: str | None  # the text the proposer was told about it
    created_at: float
    finished_at: float | None
    sandbox: tuple[str, ...] = ()  # the confinement layers that took in its evaluations

    @property
    def is_baseline(self) -> bool:
        return self.status == "baseline"

    def value(self, key: str) -> float | None:
        return metric_value(self.metrics, key)

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["reply_events"] = list(self.reply_events)
        record["sandbox"] = list(self.sandbox)
        return record


@dataclass(frozen=True)
class MessageRecord:
    id: int
    position: int
    role: str
    content: str
    candidate_id: int | None
    created_at: float


@dataclass(frozen=True)
class RequestRecord:
    """One call to the proposer: exactly what was asked and what came back, kept the moment the reply arrived."""

    id: int
    index: int  # the candidate index the request was for
    attempt: int  # 0 for the first ask, 1.. for re-asks
    candidate_id: int | None  # set once the candidate is recorded
    request: dict  # messages, model, temperature, seed and other parameters, as sent
    reply: str | None
    finish_reason: str | None
    error: str | None  # why no reply came (the proposer failed)
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    created_at: float


@dataclass(frozen=True)
class RunEvent:
    id: int
    at: float
    kind: str  # e.g. "resumed"
    detail: dict


@dataclass(frozen=True)
class EvaluationRecord:
    """One held-out or ``llm2 evaluate`` point of an objective: where it was measured and what it scored."""

    id: int
    candidate_name: str
    code_hash: str
    suite: str
    setting: dict  # the task's settings, flat, with seed and budget (EvalSetting.label())
    fitness: float | None
    seconds: float | None
    status: str
    error: str | None
    metrics: dict = field(default_factory=dict)  # the task's named numbers
    created_at: float = 0.0
    sandbox: tuple[str, ...] = ()

    def value(self, key: str) -> float | None:
        return metric_value(self.metrics, key)

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["sandbox"] = list(self.sandbox)
        return record
