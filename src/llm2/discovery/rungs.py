"""Multi-fidelity evaluation: successive halving over the rungs the task declares (opt-in: ``--rungs``).

Every candidate is first evaluated on the lowest rung (a share of the training budget, a few seeds). Once its result
is back it is promoted to the next rung if it ranks in the top 1/η of every result that rung has had so far (the
asynchronous rule of ASHA, so no generation waits for a slow one); otherwise it stops there, its rung's numbers
kept, its fitness left empty (it was never measured at full fidelity, so it is not ranked against those that were).
Baselines always climb every rung: they are the yardstick. Each decision is kept with its evidence in the
candidate's metrics (``promotions``), and each rung's fitness in ``rung_fitness``; ``rung_correlations`` is the
Spearman rank correlation between each rung and the full evaluation over the candidates that reached the top, so a
user can see whether a low rung can be trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from llm2.archive.records import CandidateRecord
from llm2.discovery.fanout import CandidateOutcome, SeedFanout

ETA = 3  # promote the top third


@dataclass(frozen=True)
class Rung:
    budget: float  # share of the full training budget
    seeds: int  # how many of the run's training seeds

    def text(self) -> str:
        return f"{self.budget:.0%} of the training budget with {self.seeds} seed{'s' * (self.seeds != 1)}"


def ladder_of(task_rungs: tuple[tuple[float, int], ...], seeds: int) -> list[Rung]:
    """The task's rungs (budget share, seeds), lowest first, then the full evaluation."""
    rungs = [Rung(float(budget), min(int(n), seeds)) for budget, n in task_rungs if 0 < budget < 1]
    return sorted(rungs, key=lambda r: (r.budget, r.seeds)) + [Rung(1.0, seeds)]


class Ladder:
    """Drives a SeedFanout through the rungs; ``on_done`` hears of each candidate once, where it stopped."""

    def __init__(self, fanout: SeedFanout, seeds: list[int], rungs: list[Rung], eta: int = ETA):
        self.fanout, self.seeds, self.rungs, self.eta = fanout, seeds, rungs, eta
        self._codes: dict[int, str] = {}
        self._level: dict[int, int] = {}
        self._always: set[int] = set()
        self._scores: list[dict[int, float]] = [{} for _ in rungs]  # what each rung has seen, key -> fitness
        self._evidence: dict[int, list[dict]] = {}
        self._seconds: dict[int, float] = {}  # evaluation seconds over the rungs climbed so far
        self._cpu: dict[int, float] = {}  # and their processor seconds

    def submit(self, key: int, code: str, always_promote: bool = False) -> None:
        self._codes[key], self._level[key], self._evidence[key], self._seconds[key] = code, 0, [], 0.0
        if always_promote:
            self._always.add(key)
        self._submit(key, fingerprint=True)

    def _submit(self, key: int, fingerprint: bool) -> None:
        rung = self.rungs[self._level[key]]
        self.fanout.submit(key, self._codes[key], budget=rung.budget, seeds=self.seeds[:rung.seeds],
                           fingerprint=fingerprint)

    def __contains__(self, key: int) -> bool:
        return key in self._level

    def drain(self, on_done: Callable[[int, CandidateOutcome], None], block: bool = True) -> None:
        def climbed(key: int, outcome: CandidateOutcome) -> None:
            level = self._level[key]
            self._seconds[key] += outcome.seconds
            self._cpu[key] = self._cpu.get(key, 0.0) + float(outcome.metrics.get("cpu_seconds") or 0.0)
            if outcome.status == "ok" and outcome.fitness is not None:
                self._scores[level][key] = outcome.fitness
            if level == len(self.rungs) - 1 or outcome.status != "ok" or outcome.fitness is None:
                on_done(key, self._finished(key, outcome))
                return
            promoted, evidence = self._judge(key, level, outcome.fitness)
            self._evidence[key].append(evidence)
            if promoted:
                self._level[key] = level + 1
                self._submit(key, fingerprint=False)
            else:
                on_done(key, self._finished(key, replace(outcome, fitness=None, fitness_std=None, stage="rung")))

        self.fanout.drain(climbed, block)

    def _judge(self, key: int, level: int, fitness: float) -> tuple[bool, dict]:
        seen = sorted(self._scores[level].values(), reverse=True)
        rank = seen.index(fitness) + 1
        quota = max(1, math.ceil(len(seen) / self.eta))
        promoted = rank <= quota or key in self._always
        return promoted, {"rung": level, "rung_text": self.rungs[level].text(), "fitness": fitness, "rank": rank,
                          "of": len(seen), "quota": quota, "promoted": promoted}

    def _finished(self, key: int, outcome: CandidateOutcome) -> CandidateOutcome:
        rung_fitness = [self._scores[level].get(key) for level in range(self._level[key] + 1)]
        metrics = {**outcome.metrics, "rung_fitness": rung_fitness, "promotions": self._evidence.pop(key),
                   "cpu_seconds": self._cpu.pop(key, 0.0)}
        self._codes.pop(key)
        self._level.pop(key)
        self._always.discard(key)
        return replace(outcome, metrics=metrics, seconds=self._seconds.pop(key))


def rung_correlations(candidates: list[CandidateRecord], rungs: int) -> list[dict]:
    """Per lower rung: the Spearman correlation between its fitness and the full evaluation's, over the candidates
    (baselines included) measured on both."""
    from scipy.stats import spearmanr

    rows = []
    for level in range(rungs - 1):
        pairs = [(c.metrics["rung_fitness"][level], c.fitness) for c in candidates
                 if c.fitness is not None and len(c.metrics.get("rung_fitness") or []) == rungs
                 and c.metrics["rung_fitness"][level] is not None]
        rho = float(spearmanr(*zip(*pairs)).statistic) if len(pairs) >= 3 else None
        rows.append({"rung": level, "spearman": None if rho is None or math.isnan(rho) else rho, "n": len(pairs)})
    return rows
