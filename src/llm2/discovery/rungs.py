"""Multi-fidelity evaluation: successive halving over the rungs the task declares (opt-in: ``--rungs``).

Every candidate is first evaluated on the lowest rung (a share of the training budget, a few seeds). Once its result
is back it is promoted to the next rung if it ranks in the top 1/η of every result that rung has had so far (the
asynchronous rule of ASHA, so no generation waits for a slow one); otherwise it stops there, its rung's numbers
kept, its fitness left empty (it was never measured at full fidelity, so it is not ranked against those that were).
Baselines always climb every rung: they are the yardstick. Each decision is kept with its evidence in the
candidate's metrics (``promotions``), and each rung's fitness in ``rung_fitness``; ``rung_correlations`` is the
Spearman rank correlation between each rung and the full evaluation over the candidates that reached the top, so a
user can see whether a low rung can be trusted.

Seed racing (on by default, ``--no-race``; the run's own rung, no task needs to declare it): every proposal is first
trained on its first training seed at the full budget; its other seeds are trained only if it could still be the
best. The rule is the noise's, not a quota: it goes on unless its first seed's fitness, raised by the most any fully
evaluated candidate's mean has ever risen above its own first seed (baselines included, at least ``MIN_PAIRS`` of
them), is still below the best full evaluation, both as they stood when the candidate was submitted. So it stops
only what is clearly worse, and the first seed's result is kept, not trained again.

Where the task can pause its training (``can_pause``; a run at a share of the budget is then the first part of the
whole run) and the executor answers pauses (the local one), a one-seed rung is a pause along the whole run of its
seed: judged at the cut, a candidate not promoted stops there (its record is the rung's, as before), a promoted
one trains on, so its rung's training is not repeated (``rung_seconds_saved``); only the seeds the rung did not
train start from scratch. Its full fitness is the same as a full evaluation's from scratch. Elsewhere (a rung of
several seeds, a task that cannot pause, Ray) a promoted candidate is trained again at the next rung.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from typing import Callable

from llm2.archive.records import CandidateRecord
from llm2.discovery.fanout import CandidateOutcome, SeedFanout, SeedRun
from llm2.evaluation import EvalResult

ETA = 3  # promote the top third
MIN_PAIRS = 3  # full evaluations the noise rule needs before it stops anything


@dataclass(frozen=True)
class Rung:
    budget: float  # share of the full training budget
    seeds: int  # how many of the run's training seeds
    rule: str = "asha"  # asha: the top 1/ETA go on; noise: all but the clearly worse (seed racing)

    def text(self) -> str:
        return f"{self.budget:.0%} of the training budget with {self.seeds} seed{'s' * (self.seeds != 1)}"


def ladder_of(task_rungs: tuple[tuple[float, int], ...], seeds: int, race: bool = False) -> list[Rung]:
    """The task's rungs (budget share, seeds), lowest first; with ``race`` (and more than one seed) the whole budget
    on the first seed; then the full evaluation."""
    rungs = [Rung(float(budget), min(int(n), seeds)) for budget, n in task_rungs if 0 < budget < 1]
    if race and seeds > 1:
        rungs.append(Rung(1.0, 1, rule="noise"))
    return sorted(rungs, key=lambda r: (r.budget, r.seeds)) + [Rung(1.0, seeds)]


class Ladder:
    """Drives a SeedFanout through the rungs; ``on_done`` hears of each candidate once, where it stopped.

    With ``pausable`` (the task can pause its training and the executor answers pauses), the first seed of a
    one-seed rung is trained along the whole run it would climb and pauses at the rung's budget: the rung is judged
    there, from a worker thread (hence the lock), and a promoted candidate trains on instead of starting again.
    """

    def __init__(self, fanout: SeedFanout, seeds: list[int], rungs: list[Rung], eta: int = ETA,
                 pausable: bool = False):
        self.fanout, self.seeds, self.rungs, self.eta, self.pausable = fanout, seeds, rungs, eta, pausable
        self._lock = threading.RLock()
        self._codes: dict[int, str] = {}
        self._level: dict[int, int] = {}
        self._always: set[int] = set()
        self._scores: list[dict[int, float]] = [{} for _ in rungs]  # what each rung has seen, key -> fitness
        self._evidence: dict[int, list[dict]] = {}
        self._seconds: dict[int, float] = {}  # evaluation seconds over the rungs climbed so far
        self._cpu: dict[int, float] = {}  # and their processor seconds
        self._saved: dict[int, float] = {}  # seconds of rung training not repeated: it went on from the cut
        self._stopped_at_pause: set[int] = set()  # judged at a pause and not promoted: not judged again
        self._shifts: list[list[float]] = [[] for _ in rungs]  # per rung: full fitness minus that rung's, measured
        self._best_full = -math.inf
        # what the noise rule judges a candidate against: the evidence as it stood when the candidate was submitted,
        # so the decision does not hang on which other candidate's seeds happen to finish first (same seed, same run)
        # (best full fitness, per rung: the largest rise measured and how many were)
        self._yardstick: dict[int, tuple[float, tuple[tuple[float, int], ...]]] = {}
        self._carried: dict[int, tuple[float, float]] = {}  # seconds, processor seconds of results reused at a rung
        if pausable:
            fanout.on_pause = self._paused

    def learn(self, candidates: list[CandidateRecord]) -> None:
        """The evidence of full evaluations already recorded on this ladder (a resumed run): the noise rule's best
        and rises, as if this session had seen them."""
        with self._lock:
            for candidate in candidates:
                climbed = (candidate.metrics or {}).get("rung_fitness") or []
                measured = candidate.fitness is not None and candidate.status != "duplicate"
                if measured and len(climbed) == len(self.rungs):
                    self._learn_full(candidate.fitness, climbed)

    def _learn_full(self, fitness: float, rung_fitness: list[float | None]) -> None:
        self._best_full = max(self._best_full, fitness)
        for level, score in enumerate(rung_fitness[:-1]):
            if score is not None:
                self._shifts[level].append(fitness - score)

    def submit(self, key: int, code: str, always_promote: bool = False) -> None:
        with self._lock:
            self._codes[key], self._level[key], self._evidence[key] = code, 0, []
            self._seconds[key] = self._saved[key] = 0.0
            if always_promote:
                self._always.add(key)
            self._yardstick[key] = (self._best_full,
                                    tuple((max(shifts, default=-math.inf), len(shifts)) for shifts in self._shifts))
            self.fanout.submit(key, code, runs=self._runs(0, self.seeds[:self.rungs[0].seeds]), fingerprint=True)

    def _runs(self, level: int, seeds: list[int]) -> list[SeedRun]:
        """The jobs of ``seeds`` at ``level``: the first seed pauses at every one-seed rung from there up (when
        the ladder is pausable) and trains to the budget of the rung above the last pause."""
        runs = []
        for seed in seeds:
            pauses, top = [], level
            while (self.pausable and seed == self.seeds[0] and top < len(self.rungs) - 1
                   and self.rungs[top].seeds == 1 and self.rungs[top + 1].budget > self.rungs[top].budget):
                pauses.append(self.rungs[top].budget)
                top += 1
            runs.append(SeedRun(seed, self.rungs[top].budget, tuple(pauses)))
        return runs

    def __contains__(self, key: int) -> bool:
        with self._lock:
            return key in self._level

    def _paused(self, key: int, seed: int, budget: float, cut: EvalResult) -> bool:
        """A run reached a rung's cut (a worker thread asks): judge the rung now; promoted, the run trains on and
        the next rung's other seeds start."""
        with self._lock:
            level = self._level.get(key)
            fitness = cut.fitness
            if level is None or self.rungs[level].budget != budget or fitness is None or not math.isfinite(fitness):
                return False  # stopped there, the cut's result is the rung's: judged once it is back
            self._scores[level][key] = fitness
            promoted, evidence = self._judge(key, level, fitness)
            self._evidence[key].append({**evidence, "at_pause": True})
            if not promoted:
                self._stopped_at_pause.add(key)
                return False
            self._level[key] = level + 1
            self._saved[key] += cut.seconds
            others = [s for s in self.seeds[:self.rungs[level + 1].seeds] if s != seed]
            if others:
                self.fanout.add_runs(key, self._codes[key], self._runs(level + 1, others))
            return True

    def drain(self, on_done: Callable[[int, CandidateOutcome], None], block: bool = True) -> None:
        def climbed(key: int, outcome: CandidateOutcome) -> None:
            with self._lock:
                finished = self._climbed(key, outcome)
            if finished is not None:
                on_done(key, finished)

        self.fanout.drain(climbed, block)

    def _climbed(self, key: int, outcome: CandidateOutcome) -> CandidateOutcome | None:
        """A rung's result is back: the candidate's final outcome, or None when it was promoted."""
        level = self._level[key]
        carried_seconds, carried_cpu = self._carried.pop(key, (0.0, 0.0))  # counted on the rung that trained them
        self._seconds[key] += outcome.seconds - carried_seconds
        self._cpu[key] = self._cpu.get(key, 0.0) + float(outcome.metrics.get("cpu_seconds") or 0.0) - carried_cpu
        if outcome.status == "ok" and outcome.fitness is not None:
            self._scores[level][key] = outcome.fitness
        if level == len(self.rungs) - 1 or outcome.status != "ok" or outcome.fitness is None:
            return self._finished(key, outcome)
        if key in self._stopped_at_pause:  # judged at its pause already
            promoted = False
        else:
            promoted, evidence = self._judge(key, level, outcome.fitness)
            self._evidence[key].append(evidence)
        if not promoted:
            return self._finished(key, replace(outcome, fitness=None, fitness_std=None, stage="rung"))
        self._level[key] = level + 1
        wanted = self.seeds[:self.rungs[level + 1].seeds]
        # seeds this rung trained at the next rung's budget are not trained again: their results are carried up
        same_budget = self.rungs[level].budget == self.rungs[level + 1].budget
        kept = dict(zip(self.seeds[:self.rungs[level].seeds], outcome.per_seed)) if same_budget else {}
        kept = {seed: result for seed, result in kept.items() if seed in wanted}
        self._carried[key] = (sum(r.seconds for r in kept.values()), sum(r.cpu_seconds for r in kept.values()))
        self.fanout.submit(key, self._codes[key], runs=self._runs(level + 1, [s for s in wanted if s not in kept]),
                           fingerprint=False, done=kept)
        return None

    def _judge(self, key: int, level: int, fitness: float) -> tuple[bool, dict]:
        if self.rungs[level].rule == "noise":
            return self._judge_noise(key, level, fitness)
        seen = sorted(self._scores[level].values(), reverse=True)
        rank = seen.index(fitness) + 1
        quota = max(1, math.ceil(len(seen) / self.eta))
        promoted = rank <= quota or key in self._always
        return promoted, {"rung": level, "rung_text": self.rungs[level].text(), "fitness": fitness, "rank": rank,
                          "of": len(seen), "quota": quota, "promoted": promoted}

    def _judge_noise(self, key: int, level: int, fitness: float) -> tuple[bool, dict]:
        """Go on unless even the largest rise from this rung to a full evaluation seen so far leaves it below the
        best full evaluation (with fewer than MIN_PAIRS rises measured: go on)."""
        best_full, rises = self._yardstick[key]
        largest, pairs = rises[level]
        margin = largest if pairs >= MIN_PAIRS else math.inf
        promoted = fitness + margin >= best_full or key in self._always
        return promoted, {"rung": level, "rung_text": self.rungs[level].text(), "fitness": fitness, "rule": "noise",
                          "best_full": best_full if math.isfinite(best_full) else None,
                          "margin": margin if math.isfinite(margin) else None, "pairs": pairs,
                          "promoted": promoted}

    def _finished(self, key: int, outcome: CandidateOutcome) -> CandidateOutcome:
        rung_fitness = [self._scores[level].get(key) for level in range(self._level[key] + 1)]
        if self._level[key] == len(self.rungs) - 1 and outcome.status == "ok" and outcome.fitness is not None:
            self._learn_full(outcome.fitness, rung_fitness)
        metrics = {**outcome.metrics, "rung_fitness": rung_fitness, "promotions": self._evidence.pop(key),
                   "rung_seconds_saved": self._saved.pop(key), "cpu_seconds": self._cpu.pop(key, 0.0)}
        self._codes.pop(key)
        self._level.pop(key)
        self._yardstick.pop(key, None)
        self._always.discard(key)
        self._stopped_at_pause.discard(key)
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


def seconds_saved(candidates: list[CandidateRecord]) -> float:
    """Evaluation seconds of rung training that candidates promoted at a pause did not repeat (a retraining ladder
    would have spent them again)."""
    return float(sum(c.metrics.get("rung_seconds_saved") or 0.0 for c in candidates))
