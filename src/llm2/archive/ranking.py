"""The leaderboard's rows: candidates ranked by fitness, baselines among them, dpo always shown as the reference."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from llm2.archive.records import CandidateRecord
from llm2.archive.store import Archive

REFERENCE_BASELINE = "dpo"


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int | None  # 1 = best fitness among scored candidates and baselines; None when not scored
    candidate: CandidateRecord
    is_reference: bool  # the dpo baseline every candidate is compared with

    def as_dict(self) -> dict[str, Any]:
        c = self.candidate
        return {"rank": self.rank, "id": c.id, "index": c.index, "name": c.name, "status": c.status,
                "generation": c.generation, "fitness": c.fitness, "fitness_std": c.fitness_std, "kl": c.kl,
                "seconds": c.seconds, "baseline": c.is_baseline, "reference": self.is_reference,
                "stage": c.stage, "error": c.error, "duplicate_of": c.duplicate_of, "metrics": c.metrics}


def reference_of(candidates: list[CandidateRecord]) -> CandidateRecord | None:
    return next((c for c in candidates if c.is_baseline and c.name == REFERENCE_BASELINE), None)


def leaderboard_rows(archive: Archive, top: int | None = 10, include_all: bool = False) -> list[LeaderboardRow]:
    """Scored candidates and baselines by fitness (best ``top`` of them, dpo added when it falls outside).

    ``include_all`` lists every candidate instead: the scored ones ranked, then the rest in proposal order.
    """
    candidates = archive.candidates()
    reference = reference_of(candidates)
    scored = sorted((c for c in candidates if c.status in ("ok", "baseline") and c.fitness is not None),
                    key=lambda c: (-c.fitness, c.index))
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


def status_counts(archive: Archive) -> dict[str, int]:
    """How many candidates ended in each status (baselines included)."""
    return dict(Counter(c.status for c in archive.candidates()))
