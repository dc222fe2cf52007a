"""Do a run's best candidates still beat the task's reference baseline off the setting they were selected on?

Every candidate and the reference are trained on the same held-out settings with the same seeds. The unit of
evidence is the held-out setting: seeds only measure the noise within one (``llm2.stats.settings_evidence``: per
setting the mean over seeds of candidate minus reference, an exact sign-flip over settings, a hierarchical
bootstrap interval; a task whose seeds all give the same numbers counts each setting once). A candidate that fails
on a setting loses it and is never called better. Each named number with a direction (``MetricColumn.better``) is
compared the same way, so a gain on the fitness bought with a loss elsewhere reads as such.

For a task with a trade-off (``Task.trade_off``), the reference is also swept over the task's knobs on every
held-out setting and seed (cached: points already in the archive are not measured again), and the headline is the
frontier verdict (``llm2.frontier``); the single-point comparison stays as the second line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from llm2 import progress
from llm2.archive import Archive, CandidateRecord
from llm2.discovery.fanout import CandidateOutcome, fan_out
from llm2.execution.base import Executor
from llm2.frontier import FrontierVerdict, frontier_grid, frontier_verdicts, start_setting
from llm2.points import FRONTIER_SUITE, HELDOUT_SUITE, PointIndex, point_value, settings_key
from llm2.stats import (SettingsEvidence, evidence_phrase, mean_std, seeds_phrase, settings_evidence,
                        significant_direction, verdict_words)
from llm2.task_api.base import EvalSetting, MetricColumn, Task, TradeOff
from llm2.task_api.optional import optional


@dataclass(frozen=True)
class ColumnComparison:
    label: str
    better: str  # "higher" | "lower": which direction counts as better for this number
    candidate_mean: float | None
    reference_mean: float | None
    evidence: SettingsEvidence | None

    @property
    def word(self) -> str:
        """'higher' / 'lower' when the difference over settings is significant, else 'no significant difference'."""
        direction = None if self.evidence is None else significant_direction(self.evidence)
        return direction or "no significant difference"


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
    settings: int  # held-out settings compared (both sides ran)
    seeds: int  # seeds per setting
    deterministic: bool  # every seed gave the same numbers: seeds not counted
    failures: int  # held-out settings where the candidate failed
    evidence: SettingsEvidence | None  # on the fitness
    word: str  # "better" | "worse" | "no significant difference" | "cannot tell" | "not enough data"
    verdict: str  # the single-point comparison in words
    headline: str  # the frontier verdict for a task with a trade-off, else ``verdict``
    columns: tuple[ColumnComparison, ...] = ()
    rows: tuple[SettingRow, ...] = field(default=())
    frontier: tuple[FrontierVerdict, ...] = ()  # one per gain of the task's trade-off


@dataclass(frozen=True)
class _Job:
    suite: str
    contender: CandidateRecord
    setting: EvalSetting


def run_heldout(task: Task, archive: Archive, executor: Executor, candidates: list[CandidateRecord],
                reference: CandidateRecord, base: Any, seeds: int) -> list[HeldoutVerdict]:
    settings = task.heldout_settings(base)
    with progress.step(f"preparing {len(settings)} held-out settings", len(settings)) as advance:
        for done, setting in enumerate(settings, start=1):
            task.prepare(setting)  # build other worlds here once, not in every worker
            advance(done)
    points = [EvalSetting(setting, seed) for setting in settings for seed in range(seeds)]
    jobs = [_Job(HELDOUT_SUITE, contender, point) for point in points for contender in (reference, *candidates)]
    trade_off = optional(task, "trade_off")
    if trade_off is not None:
        jobs += _frontier_jobs(task, trade_off, archive, reference, points)
    _evaluate(archive, executor, jobs)
    index = PointIndex(archive.evaluations())
    texts = task.texts_for(settings[0] if settings else base)  # what the held-out points were scored on
    return [compare(task, index, candidate, reference.name, texts.fitness_name, _describer(task))
            for candidate in candidates]


def _frontier_jobs(task: Task, trade_off: TradeOff, archive: Archive, reference: CandidateRecord,
                   points: list[EvalSetting]) -> list[_Job]:
    """The reference at every grid point not measured yet (the archive is the cache), and its untrained start,
    scored here in the trusted process (no candidate code involved) and recorded as budget 0."""
    index = PointIndex(archive.evaluations())
    own = {settings_key(p.label(), ()) for p in points}
    wanted: dict[str, EvalSetting] = {}
    for point in points:
        for grid_point in frontier_grid(point, trade_off):
            key = settings_key(grid_point.label(), ())
            cached = index.get(reference.name, grid_point.label())
            if key not in own and not (cached is not None and cached.status == "ok"
                                       and cached.code_hash == reference.code_hash):
                wanted.setdefault(key, grid_point)
        start = start_setting(point)
        if index.get(reference.name, start.label()) is None:
            metrics = task.scorer(point.task).reference_metrics()
            archive.add_evaluation(candidate_name=reference.name, code_hash=reference.code_hash,
                                   suite=FRONTIER_SUITE, setting=start.label(), fitness=metrics.fitness, seconds=0.0,
                                   status="ok", error=None, metrics=dict(metrics.values))
    return [_Job(FRONTIER_SUITE, reference, setting) for setting in wanted.values()]


def _evaluate(archive: Archive, executor: Executor, jobs: list[_Job]) -> None:
    """Submit every job at once so all workers stay busy; record each point as it comes back."""
    def record(position: int, outcome: CandidateOutcome) -> None:
        job = jobs[position]
        archive.add_evaluation(candidate_name=job.contender.name, code_hash=job.contender.code_hash,
                               suite=job.suite, setting=job.setting.label(), fitness=outcome.fitness,
                               seconds=outcome.seconds, status=outcome.status, error=outcome.error,
                               metrics=outcome.metrics, sandbox=outcome.sandbox)

    settings = {settings_key(job.setting.label(), ()) for job in jobs}
    with progress.step(f"held-out points done (a setting at one seed, {len(jobs)} evaluations in all)",
                       len(settings)) as advance:
        fan_out(executor, [(job.setting, [job.setting.seed], job.contender.code) for job in jobs], record, advance)


def _describer(task: Task) -> Callable[[dict], str]:
    def describe(label: dict) -> str:
        try:
            return task.setting_text(task.settings_from_dict({k: v for k, v in label.items() if k != "budget"}))
        except ValueError:
            return settings_key(label)
    return describe


@dataclass(frozen=True)
class _Paired:
    mine: list[list[float]]
    theirs: list[list[float]]
    failed: int  # settings where a seed of the candidate failed
    missing: int  # settings without a single seed both sides report


def _paired(index: PointIndex, candidate: str, reference: str, key: str) -> _Paired:
    """Per held-out setting, the candidate's and the reference's values over the seeds where the reference ran."""
    mine, theirs, failed, missing = [], [], 0, 0
    for setting in index.heldout_settings(candidate):
        runs = [(index.get(candidate, {**setting.label, "seed": s}), index.get(reference, {**setting.label, "seed": s}))
                for s in setting.seeds]
        if any(run is None or run.status != "ok" for run, _ in runs):
            failed += 1
            continue
        values = [(point_value(a, key), point_value(b, key)) for a, b in runs]
        values = [(a, b) for a, b in values if a is not None and b is not None]
        if not values:
            missing += 1
            continue
        mine.append([a for a, _ in values]), theirs.append([b for _, b in values])
    return _Paired(mine, theirs, failed, missing)


def compare(task: Task, index: PointIndex, candidate: CandidateRecord, reference: str, fitness_name: str,
            describe: Callable[[dict], str]) -> HeldoutVerdict:
    paired = _paired(index, candidate.name, reference, "fitness")
    evidence = settings_evidence(paired.mine, paired.theirs) if paired.mine else None
    word, text = single_point_words(evidence, paired.failed, reference, fitness_name)
    columns = tuple(_compare_column(index, c, candidate.name, reference) for c in task.metric_columns if c.better)
    keys = ("fitness", *(c.key for c in task.metric_columns))
    rows = tuple(SettingRow(describe(s.label), _means(index, candidate.name, s, keys),
                            _means(index, reference, s, keys)) for s in index.heldout_settings(candidate.name))
    frontier: tuple[FrontierVerdict, ...] = ()
    trade_off = optional(task, "trade_off")
    if trade_off is not None:
        labels = {"fitness": fitness_name, **{c.key: c.label for c in task.metric_columns}}
        frontier = frontier_verdicts(index, trade_off, candidate.name, reference, labels)
    return HeldoutVerdict(candidate.name, reference, fitness_name, candidate.fitness,
                          0 if evidence is None else evidence.settings, 0 if evidence is None else evidence.seeds,
                          bool(evidence and evidence.deterministic), paired.failed, evidence, word, text,
                          frontier[0].text if frontier else text, columns, rows, frontier)


def _compare_column(index: PointIndex, column: MetricColumn, candidate: str, reference: str) -> ColumnComparison:
    paired = _paired(index, candidate, reference, column.key)
    evidence = settings_evidence(paired.mine, paired.theirs) if paired.mine else None
    flat = (lambda rows: mean_std([v for row in rows for v in row])[0] if rows else None)  # noqa: E731
    return ColumnComparison(column.label, column.better or "", flat(paired.mine), flat(paired.theirs), evidence)


def _means(index: PointIndex, name: str, setting: Any, keys: tuple[str, ...]) -> dict[str, float | str | None]:
    runs = [index.get(name, {**setting.label, "seed": s}) for s in setting.seeds]
    if any(run is None or run.status != "ok" for run in runs):
        return {key: "failed" for key in keys}
    row: dict[str, float | str | None] = {}
    for key in keys:
        values = [point_value(run, key) for run in runs]
        row[key] = None if any(v is None for v in values) else mean_std(values)[0]
    return row


def single_point_words(evidence: SettingsEvidence | None, failed: int, reference: str,
                       fitness_name: str) -> tuple[str, str]:
    """(word, sentence): 'better than dpo on judge score on 5 of 6 held-out settings (3 seeds each), mean +0.021
    [+0.008, +0.034], exact sign-flip over settings p = 0.031'."""
    note = f"; failed on {failed} held-out setting{'s' * (failed != 1)}" if failed else ""
    if evidence is None:
        return "not enough data", f"not enough data: no held-out setting where both ran{note}"
    counts = (f"on {evidence.wins} of {evidence.settings} held-out settings ({seeds_phrase(evidence)}), "
              f"{evidence_phrase(evidence)}{note}")
    against = f"{reference} on {fitness_name}"
    return verdict_words(evidence, failed, against, f"higher {counts}", (
        ("better", f"better than {against} {counts}"), ("worse", f"worse than {against}: higher {counts}"),
        ("no significant difference", f"no significant difference from {against}: higher {counts}")))
