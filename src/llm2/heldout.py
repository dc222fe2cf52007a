"""Do a run's best candidates still beat the task's reference baseline off the setting they were selected on?

Every candidate and the reference are trained on the same held-out settings with the same seeds, so each
(setting, seed) is a pair; the verdict on the fitness uses the win rate over the pairs with a Wilson interval and a
paired sign-flip test. A candidate that fails on a setting loses that pair (it never silently drops out of the
comparison). Each of the task's named numbers with a direction (a MetricColumn's ``better``) gets its own paired
comparison, so the verdict says on what a candidate wins: a gain on the fitness bought with a loss elsewhere reads
as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from llm2 import progress
from llm2.archive import Archive, CandidateRecord
from llm2.discovery.evaluations import CandidateOutcome, SeedFanout
from llm2.execution.base import Executor
from llm2.stats import PairedTest, count_wins, mean_std, paired_test, win_rate_ci
from llm2.tasks.base import EvalSetting, MetricColumn, Task

SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class ColumnComparison:
    label: str
    better: str  # "higher" | "lower": which direction counts as better for this number
    candidate_mean: float | None
    reference_mean: float | None
    test: PairedTest | None

    @property
    def word(self) -> str:
        """'higher' / 'lower' when the difference is significant, else 'no significant difference'."""
        if self.test is None or math.isnan(self.test.p_value) or self.test.p_value >= SIGNIFICANCE:
            return "no significant difference"
        return "higher" if self.test.mean_diff > 0 else "lower"


@dataclass(frozen=True)
class SettingRow:
    setting: str  # the task's words for the setting
    # "fitness" and each column's key: the mean over seeds; "failed" when a seed failed; None when not reported
    candidate: dict[str, float | str | None]
    reference: dict[str, float | str | None]


@dataclass(frozen=True)
class HeldoutVerdict:
    name: str
    reference: str
    fitness_name: str
    run_fitness: float | None
    pairs: int
    failures: int
    win_rate: float
    win_low: float
    win_high: float
    test: PairedTest | None  # on the fitness, over the pairs where both ran
    verdict: str
    columns: tuple[ColumnComparison, ...] = ()
    settings: tuple[SettingRow, ...] = field(default=())


def run_heldout(task: Task, archive: Archive, executor: Executor, candidates: list[CandidateRecord],
                reference: CandidateRecord, base: Any, seeds: int) -> list[HeldoutVerdict]:
    settings = task.heldout_settings(base)
    with progress.step(f"preparing {len(settings)} held-out settings", len(settings)) as advance:
        for done, setting in enumerate(settings, start=1):
            task.prepare(setting)  # build other worlds here once, not in every worker
            advance(done)
    contenders = [reference, *candidates]
    # Submit every (setting, seed, contender) at once so all workers stay busy; each seed is its own fan-out
    # because the pairs are per seed, not averaged over seeds.
    fanouts = {(i, seed): SeedFanout(executor, EvalSetting(setting), [seed])
               for i, setting in enumerate(settings) for seed in range(seeds)}
    for fanout in fanouts.values():
        for k, contender in enumerate(contenders):
            fanout.submit(k, contender.code)
    # outcomes[name][(i_setting, seed)] = the outcome at that point
    outcomes: dict[str, dict[tuple[int, int], CandidateOutcome]] = {c.name: {} for c in contenders}
    # fan-outs run setting by setting (seeds inner), so a setting is done once its last seed's fan-out drained
    with progress.step(f"held-out settings done ({len(contenders)} objectives × {seeds} seeds each)",
                       len(settings)) as advance:
        for (i, seed), fanout in fanouts.items():
            def record(k: int, outcome: CandidateOutcome, i: int = i, seed: int = seed) -> None:
                contender = contenders[k]
                outcomes[contender.name][(i, seed)] = outcome
                archive.add_evaluation(candidate_name=contender.name, code_hash=contender.code_hash,
                                       suite="heldout", setting=EvalSetting(settings[i], seed).label(),
                                       fitness=outcome.fitness, seconds=outcome.seconds, status=outcome.status,
                                       error=outcome.error, metrics=outcome.metrics, sandbox=outcome.sandbox)
            fanout.drain(record)
            if seed == seeds - 1:
                advance(i + 1)
    labels = [task.setting_text(s) for s in settings]
    fitness_name = task.texts_for(base).fitness_name
    return [compare(task, c, outcomes[c.name], reference.name, outcomes[reference.name], labels, seeds, fitness_name)
            for c in candidates]


def _value(outcome: CandidateOutcome | None, key: str) -> float | None:
    if outcome is None or outcome.status != "ok":
        return None
    return outcome.fitness if key == "fitness" else outcome.value(key)


def compare(task: Task, candidate: CandidateRecord, mine: dict, reference_name: str, theirs: dict,
            labels: list[str], seeds: int, fitness_name: str) -> HeldoutVerdict:
    keys = sorted(theirs)
    fitness_mine = {k: _value(mine.get(k), "fitness") for k in keys}
    fitness_theirs = {k: _value(theirs[k], "fitness") for k in keys}
    both = [k for k in keys if fitness_mine[k] is not None and fitness_theirs[k] is not None]
    failures = sum(1 for k in keys if fitness_mine[k] is None)
    # A failed run of the candidate loses its pair; a failed reference run gives the candidate the win.
    wins = count_wins([fitness_mine[k] for k in both], [fitness_theirs[k] for k in both]) if both else 0.0
    wins += sum(1 for k in keys if fitness_mine[k] is not None and fitness_theirs[k] is None)
    rate, low, high = win_rate_ci(wins, len(keys))
    test = paired_test([fitness_mine[k] for k in both], [fitness_theirs[k] for k in both]) if len(both) >= 2 \
        else None
    columns = tuple(_compare_column(c, mine, theirs, keys) for c in task.metric_columns if c.better)
    rows = tuple(_setting_row(task.metric_columns, label, i, mine, theirs, seeds) for i, label in enumerate(labels))
    return HeldoutVerdict(candidate.name, reference_name, fitness_name, candidate.fitness, len(keys), failures, rate,
                          low, high, test, verdict(test, low, high, reference_name, fitness_name), columns, rows)


def _compare_column(column: MetricColumn, mine: dict, theirs: dict, keys: list) -> ColumnComparison:
    pairs = [(_value(mine.get(k), column.key), _value(theirs[k], column.key)) for k in keys]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    test = paired_test([a for a, _ in pairs], [b for _, b in pairs]) if len(pairs) >= 2 else None
    mean = (lambda values: mean_std(values)[0] if values else None)  # noqa: E731
    return ColumnComparison(column.label, column.better or "", mean([a for a, _ in pairs]),
                            mean([b for _, b in pairs]), test)


def _setting_row(columns, label: str, index: int, mine: dict, theirs: dict, seeds: int) -> SettingRow:
    def means(outcomes: dict) -> dict[str, float | str | None]:
        runs = [outcomes.get((index, seed)) for seed in range(seeds)]
        if any(run is None or run.status != "ok" for run in runs):
            return {key: "failed" for key in ("fitness", *(c.key for c in columns))}
        row: dict[str, float | str | None] = {}
        for key in ("fitness", *(c.key for c in columns)):
            values = [_value(run, key) for run in runs]
            row[key] = None if any(v is None for v in values) else mean_std(values)[0]
        return row

    return SettingRow(label, means(mine), means(theirs))


def verdict(test: PairedTest | None, win_low: float, win_high: float, reference: str, fitness_name: str) -> str:
    if test is None or math.isnan(test.p_value):
        return "not enough data"
    if test.p_value < SIGNIFICANCE and test.mean_diff > 0 and win_low > 0.5:
        return f"better than {reference} on {fitness_name}"
    if test.p_value < SIGNIFICANCE and test.mean_diff < 0 and win_high < 0.5:
        return f"worse than {reference} on {fitness_name}"
    return f"no significant difference from {reference} on {fitness_name}"
