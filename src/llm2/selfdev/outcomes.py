"""One iteration's results, read from the archive: each sample's completion and what it scored, its statistics,
and the preference pairs built from it (chosen: the top share of the scored samples; rejected: the bottom share).

A duplicate sample (code the run had already evaluated, a baseline's included) is the same algorithm: it counts
with its original's status and fitness, so a factory that keeps writing its best algorithm is seen doing so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from llm2.archive import Archive, CandidateRecord
from llm2.archive.ranking import SCORED


@dataclass(frozen=True)
class SampleOutcome:
    slot: int
    candidate_id: int
    name: str
    completion: str  # the raw text the factory wrote
    status: str  # the candidate's own status (duplicate included)
    valid: bool  # its algorithm was trained and scored (its original's, for a duplicate)
    fitness: float | None  # its algorithm's fitness (its original's, for a duplicate)
    duplicate_of: int | None
    error: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def iteration_outcomes(archive: Archive, generation: int) -> list[SampleOutcome]:
    """The samples of one generation, in slot order, once none is pending."""
    candidates = archive.candidates()
    by_id = {c.id: c for c in candidates}
    completions = {r.candidate_id: (r.request.get("slot"), r.reply) for r in archive.requests()
                   if r.candidate_id is not None and r.reply is not None}
    outcomes = []
    for candidate in candidates:
        if candidate.generation != generation:
            continue
        slot, text = completions.get(candidate.id, (None, None))
        source = by_id.get(candidate.duplicate_of, candidate) if candidate.status == "duplicate" else candidate
        valid = source.status in SCORED and source.fitness is not None and math.isfinite(source.fitness)
        outcomes.append(SampleOutcome(
            slot=-1 if slot is None else int(slot), candidate_id=candidate.id, name=candidate.name,
            completion=text or "", status=candidate.status, valid=valid, fitness=source.fitness if valid else None,
            duplicate_of=candidate.duplicate_of, error=source.error))
    return sorted(outcomes, key=lambda o: (o.slot, o.candidate_id))


@dataclass(frozen=True)
class IterationStats:
    iteration: int
    temperature: float
    samples: int
    valid: int
    valid_share: float
    duplicates: int  # samples whose algorithm the run had seen before (earlier in this iteration included)
    distinct_valid: int  # different algorithms among the valid samples
    mean: float | None  # over the valid samples' fitness
    median: float | None
    top_decile: float | None  # mean of the best tenth of the valid samples (at least one)
    std: float | None
    best_candidate: int | None
    best_name: str | None
    best_fitness: float | None
    reference_fitness: float | None  # the task's reference baseline in this run
    above_reference: float | None  # share of valid samples scoring above the reference
    chosen: int = 0
    rejected: int = 0
    pairs: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def iteration_stats(iteration: int, temperature: float, outcomes: Sequence[SampleOutcome],
                    reference: CandidateRecord | None, pairs: PairSet | None = None) -> IterationStats:
    scores = sorted((o.fitness for o in outcomes if o.valid), reverse=True)
    valid = [o for o in outcomes if o.valid]
    best = max(valid, key=lambda o: (o.fitness, -o.slot)) if valid else None
    reference_fitness = reference.fitness if reference is not None else None
    top = scores[: max(1, math.ceil(len(scores) / 10))]
    return IterationStats(
        iteration=iteration, temperature=temperature, samples=len(outcomes), valid=len(valid),
        valid_share=len(valid) / len(outcomes) if outcomes else 0.0,
        duplicates=sum(o.status == "duplicate" for o in outcomes),
        distinct_valid=len({o.duplicate_of or o.candidate_id for o in valid}),
        mean=statistics.fmean(scores) if scores else None, median=statistics.median(scores) if scores else None,
        top_decile=statistics.fmean(top) if scores else None,
        std=statistics.pstdev(scores) if scores else None,
        best_candidate=None if best is None else (best.duplicate_of or best.candidate_id),
        best_name=None if best is None else best.name, best_fitness=None if best is None else best.fitness,
        reference_fitness=reference_fitness,
        above_reference=(sum(s > reference_fitness for s in scores) / len(scores)
                         if scores and reference_fitness is not None else None),
        chosen=len(pairs.chosen) if pairs else 0, rejected=len(pairs.rejected) if pairs else 0,
        pairs=len(pairs.pairs) if pairs else 0)


@dataclass(frozen=True)
class PairSet:
    chosen: tuple[SampleOutcome, ...]
    rejected: tuple[SampleOutcome, ...]
    pairs: tuple[tuple[SampleOutcome, SampleOutcome], ...]  # (chosen, rejected), chosen's fitness strictly higher


def build_pairs(outcomes: Sequence[SampleOutcome], chosen_top: float, rejected_bottom: float,
                rejected_pool: str = "all", max_pairs: int = 512) -> PairSet:
    """Chosen: the best ``chosen_top`` of the valid samples (at least one); rejected: the worst ``rejected_bottom``
    of the pool (valid samples, or all with failures ranked lowest); every chosen × rejected combination whose
    chosen scored strictly higher and whose texts differ, best chosen first, at most ``max_pairs``."""
    usable = [o for o in outcomes if o.completion.strip()]
    valid = sorted((o for o in usable if o.valid), key=lambda o: (-o.fitness, o.slot))
    if not valid:
        return PairSet((), (), ())
    chosen = tuple(valid[: max(1, math.ceil(chosen_top * len(valid)))])
    pool = valid if rejected_pool == "valid" else valid + [o for o in usable if not o.valid]
    rejected = tuple(reversed(pool[-max(1, math.ceil(rejected_bottom * len(pool))):]))  # worst first
    taken = {o.candidate_id for o in chosen}
    rejected = tuple(o for o in rejected if o.candidate_id not in taken)
    pairs = [(i + j, i, good, bad) for i, good in enumerate(chosen) for j, bad in enumerate(rejected)
             if good.completion != bad.completion and (not bad.valid or good.fitness > bad.fitness)]
    pairs.sort(key=lambda p: p[:2])  # diagonal order: a cap keeps every chosen and every rejected in play
    return PairSet(chosen, rejected, tuple((good, bad) for _, _, good, bad in pairs[:max_pairs]))
