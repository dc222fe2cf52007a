"""Failure statistics of a run: where candidates stopped, in which status, and the most common reasons."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Sequence

from llm2.archive import CandidateRecord
from llm2.evaluation import STAGES

REJECTED = ("invalid", "failed", "timeout")
REASON_LENGTH = 140


@dataclass(frozen=True)
class Reason:
    text: str  # the error's first line, numbers replaced by N so that alike errors group together
    count: int
    examples: tuple[str, ...]  # names of a few candidates that hit it


@dataclass(frozen=True)
class FailureStats:
    counts: dict[str, dict[str, int]]  # stage -> status -> candidates (proposals only, no baselines)
    total: int
    rejected: int
    reasons: tuple[Reason, ...]  # most common first


def stage_of(candidate: CandidateRecord) -> str:
    if candidate.status == "pending":
        return "not finished"
    if candidate.status == "duplicate":
        return "duplicate check"
    return candidate.stage or "unknown"


def reason_key(candidate: CandidateRecord) -> str:
    """'status at stage: first line of the error', numbers as N, so that alike failures count together."""
    lines = (candidate.error or "").strip().splitlines()
    first_line = lines[0] if lines else "no reason recorded"
    generic = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", first_line)
    if len(generic) > REASON_LENGTH:
        generic = generic[: REASON_LENGTH - 1] + "…"
    return f"{candidate.status} at {candidate.stage or 'unknown'}: {generic}"


def failure_stats(candidates: Sequence[CandidateRecord], top: int = 10) -> FailureStats:
    proposals = [c for c in candidates if not c.is_baseline]
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for candidate in proposals:
        per_stage = counts[stage_of(candidate)]
        per_stage[candidate.status] = per_stage.get(candidate.status, 0) + 1
    order = [*STAGES, "duplicate check", "not finished", "unknown"]
    ordered = {stage: counts[stage] for stage in sorted(counts, key=lambda s: order.index(s) if s in order
                                                        else len(order))}
    rejected = [c for c in proposals if c.status in REJECTED]
    keys = [reason_key(c) for c in rejected]
    reasons = []
    for text, count in Counter(keys).most_common(top):
        examples = [c.name for c, key in zip(rejected, keys) if key == text][:3]
        reasons.append(Reason(text, count, tuple(examples)))
    return FailureStats(ordered, len(proposals), len(rejected), tuple(reasons))
