"""Candidates ranked by fitness — the one ranking every reader uses — and the leaderboard's rows, with the task's
reference baseline always shown."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

from llm2.archive.records import CandidateRecord

SCORED = ("ok", "baseline")


def ranked(candidates: Iterable[CandidateRecord], include_baselines: bool = True) -> list[CandidateRecord]:
    """Scored candidates (and baselines), best fitness first; ties: the earlier first."""
    statuses = SCORED if include_baselines else ("ok",)
    return sorted((c for c in candidates if c.status in statuses and c.fitness is not None),
                  key=lambda c: (-c.fitness, c.index))


def baseline(candidates: Iterable[CandidateRecord], name: str) -> CandidateRecord | None:
    """The baseline of that name as measured in the run (None when it was not measured, or failed)."""
    return next((c for c in candidates if c.is_baseline and c.name == name), None)


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int | None  # 1 = best fitness among scored candidates and baselines; None when not scored
    candidate: CandidateRecord
    is_reference: bool  # the reference baseline every candidate is compared with

    def as_dict(self) -> dict[str, Any]:
        c = self.candidate
        return {"rank": self.rank, "id": c.id, "index": c.index, "name": c.name, "status": c.status,
                "generation": c.generation, "fitness": c.fitness, "fitness_std": c.fitness_std,
                "seconds": c.seconds, "baseline": c.is_baseline, "reference": self.is_reference,
                "stage": c.stage, "error": c.error, "duplicate_of": c.duplicate_of, "metrics": c.metrics,
                "sandbox": list(c.sandbox)}


def leaderboard_rows(candidates: list[CandidateRecord], reference_name: str, top: int | None = 10,
                     include_all: bool = False) -> list[LeaderboardRow]:
    """Scored candidates and baselines by fitness (best ``top`` of them, the reference added when outside).

    ``include_all`` lists every candidate instead: the scored ones ranked, then the rest in proposal order.
    """
    reference = baseline(candidates, reference_name)
    scored = ranked(candidates)
    ranks = {c.id: rank for rank, c in enumerate(scored, start=1)}

    def row(c: CandidateRecord) -> LeaderboardRow:
        return LeaderboardRow(ranks.get(c.id), c, reference is not None and c.id == reference.id)

    if include_all:
        return [row(c) for c in scored] + [row(c) for c in candidates if c.id not in ranks]
    shown = scored if top is None else scored[:top]
    rows = [row(c) for c in shown]
    if reference is not None and all(c.id != reference.id for c in shown):
        rows.append(row(reference))
    return rows


def status_counts(candidates: Iterable[CandidateRecord]) -> dict[str, int]:
    """How many candidates ended in each status (baselines included)."""
    return dict(Counter(c.status for c in candidates))
