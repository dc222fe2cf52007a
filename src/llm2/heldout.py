"""Do a run's best candidates still beat dpo off the setting they were selected on?

Every candidate and dpo are trained on the same held-out settings with the same seeds, so each (setting, seed)
is a pair; the verdict uses the win rate over the pairs with a Wilson interval and a paired sign-flip test.
A candidate that fails on a setting loses that pair (it never silently drops out of the comparison).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llm2.archive import Archive, CandidateRecord
from llm2.discovery.evaluations import CandidateOutcome, SeedFanout
from llm2.execution.base import Executor
from llm2.stats import PairedTest, count_wins, paired_test, win_rate_ci
from llm2.tasks.base import EvalSetting, Task

SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class HeldoutVerdict:
    name: str
    run_fitness: float | None
    pairs: int
    failures: int
    win_rate: float
    win_low: float
    win_high: float
    test: PairedTest | None  # over the pairs where both ran
    verdict: str


def setting_label(setting: EvalSetting) -> dict:
    return {"beta": setting.beta, "seed": setting.seed, "world_seed": setting.world_seed,
            "label_noise": setting.label_noise}


def run_heldout(task: Task, archive: Archive, executor: Executor, candidates: list[CandidateRecord],
                dpo: CandidateRecord, base: EvalSetting, seeds: int) -> list[HeldoutVerdict]:
    settings = task.heldout_settings(base)
    for setting in settings:
        task.prepare(setting)  # build other worlds here once, not in every worker
    contenders = [dpo, *candidates]
    # Submit every (setting, seed, contender) at once so all workers stay busy; each seed is its own fan-out
    # because the pairs are per seed, not averaged over seeds.
    fanouts = {(i, seed): SeedFanout(executor, setting, [seed])
               for i, setting in enumerate(settings) for seed in range(seeds)}
    for fanout in fanouts.values():
        for k, contender in enumerate(contenders):
            fanout.submit(k, contender.code)
    # scores[name][(i_setting, seed)] = fitness, or None when the evaluation failed
    scores: dict[str, dict[tuple[int, int], float | None]] = {c.name: {} for c in contenders}
    for (i, seed), fanout in fanouts.items():
        def record(k: int, outcome: CandidateOutcome, i: int = i, seed: int = seed) -> None:
            contender = contenders[k]
            scores[contender.name][(i, seed)] = outcome.fitness if outcome.status == "ok" else None
            archive.add_evaluation(candidate_name=contender.name, code_hash=contender.code_hash, suite="heldout",
                                   setting=setting_label(settings[i].replace(seed=seed)), fitness=outcome.fitness,
                                   kl=outcome.kl, seconds=outcome.seconds, status=outcome.status,
                                   error=outcome.error)
        fanout.drain(record)
    return [compare(c, scores[c.name], scores[dpo.name]) for c in candidates]


def compare(candidate: CandidateRecord, mine: dict, dpo: dict) -> HeldoutVerdict:
    keys = sorted(dpo)
    both = [k for k in keys if mine.get(k) is not None and dpo[k] is not None]
    failures = sum(1 for k in keys if mine.get(k) is None)
    # A failed run of the candidate loses its pair; a failed dpo run gives the candidate the win.
    wins = count_wins([mine[k] for k in both], [dpo[k] for k in both]) if both else 0.0
    wins += sum(1 for k in keys if mine.get(k) is not None and dpo[k] is None)
    rate, low, high = win_rate_ci(wins, len(keys))
    test = paired_test([mine[k] for k in both], [dpo[k] for k in both]) if len(both) >= 2 else None
    return HeldoutVerdict(candidate.name, candidate.fitness, len(keys), failures, rate, low, high, test,
                          verdict(test, low, high))


def verdict(test: PairedTest | None, win_low: float, win_high: float) -> str:
    if test is None or math.isnan(test.p_value):
        return "not enough data"
    if test.p_value < SIGNIFICANCE and test.mean_diff > 0 and win_low > 0.5:
        return "better than dpo"
    if test.p_value < SIGNIFICANCE and test.mean_diff < 0 and win_high < 0.5:
        return "worse than dpo"
    return "no significant difference"
