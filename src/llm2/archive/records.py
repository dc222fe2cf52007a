"""The records the archive hands out: a run, its candidates, its conversation, its extra evaluations."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RUN_STATUSES = ("running", "finished", "stopped", "failed")
CANDIDATE_STATUSES = ("pending", "ok", "invalid", "failed", "timeout", "duplicate", "baseline")


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
    kl: float | None
    metrics: dict  # any extra numbers
    seconds: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    reply_events: tuple[str, ...]  # repairs / re-asks recorded for this reply
    feedback: str | None  # the text the proposer was told about it
    created_at: float
    finished_at: float | None

    @property
    def is_baseline(self) -> bool:
        return self.status == "baseline"

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["reply_events"] = list(self.reply_events)
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
class EvaluationRecord:
    """One held-out or ``llm2 evaluate`` point of an objective: where it was measured and what it scored.

    Reads like a dict too (``record["beta"]``), for report code that prefers mappings.
    """

    id: int
    candidate_name: str
    code_hash: str
    suite: str
    setting: dict  # EvalSetting fields: beta, seed, world_seed, label_noise, budget
    fitness: float | None
    kl: float | None
    seconds: float | None
    status: str
    error: str | None
    metrics: dict = field(default_factory=dict)
    created_at: float = 0.0

    @property
    def beta(self) -> float | None:
        return self.setting.get("beta")

    @property
    def seed(self) -> int | None:
        return self.setting.get("seed")

    @property
    def world_seed(self) -> int | None:
        return self.setting.get("world_seed")

    @property
    def label_noise(self) -> float | None:
        return self.setting.get("label_noise")

    def __getitem__(self, key: str) -> Any:
        if key in ("beta", "seed", "world_seed", "label_noise") or key in self.__dataclass_fields__:
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record.update(beta=self.beta, seed=self.seed, world_seed=self.world_seed, label_noise=self.label_noise)
        return record
