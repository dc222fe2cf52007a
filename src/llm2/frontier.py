"""The frontier verdict for tasks with a trade-off (``Task.trade_off``): is a candidate's point above what the
reference baseline reaches at the same cost?

On every held-out setting and seed the reference is swept over the task's knobs (``frontier_grid``), plus its
untrained start (budget 0). Its frontier there is the upper envelope of those points: the best gain reached at a
cost no higher, linear between neighbouring envelope points. A candidate cheaper than every grid point, or dearer
than every one, is not placed on that setting ("outside": the reference may well keep gaining past its dearest
point, so nothing is known there). A candidate's gap on a (setting, seed) is its gain
minus the frontier at its own cost; the unit of evidence is the setting, as in the single-point verdict
(``llm2.stats.settings_evidence``). Knob names, the cost and the gains are the task's words; this module knows none.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence

from llm2.points import FRONTIER_SUITE, HELDOUT_SUITE, PointIndex, point_value, settings_key
from llm2.stats import SettingsEvidence, evidence_phrase, seeds_phrase, settings_evidence, verdict_words
from llm2.task_api.base import EvalSetting, TradeOff


def frontier_grid(setting: EvalSetting, trade_off: TradeOff) -> list[EvalSetting]:
    """Every combination of the knobs' values at ``setting`` (values the task's settings reject are skipped)."""
    grid: dict[str, EvalSetting] = {}
    for values in itertools.product(*(k.values for k in trade_off.knobs)):
        changes = {}
        for knob, value in zip(trade_off.knobs, values):
            own = setting.budget if knob.name == "budget" else getattr(setting.task, knob.name)
            changes[knob.name] = own * value if knob.relative else value
        try:
            point = setting.replace(**changes)
        except (TypeError, ValueError):
            continue
        grid.setdefault(settings_key(point.label(), ()), point)
    return list(grid.values())


def start_setting(setting: EvalSetting) -> EvalSetting:
    """The untrained start, recorded as the reference at no training budget."""
    return setting.replace(budget=0.0)


@dataclass(frozen=True)
class Point:
    cost: float
    gain: float


@dataclass(frozen=True)
class Envelope:
    """The upper envelope of a set of points: each point gains more than every cheaper one."""

    points: tuple[Point, ...]  # by cost, gains rising

    @classmethod
    def of(cls, points: Sequence[Point]) -> "Envelope":
        kept: list[Point] = []
        for point in sorted(points, key=lambda p: (p.cost, -p.gain)):
            if not kept or point.gain > kept[-1].gain:
                kept.append(point)
        return cls(tuple(kept))

    def gain_at(self, cost: float) -> float | None:
        """The frontier's gain at ``cost``; None below its cheapest point (nothing known there)."""
        if not self.points or cost < self.points[0].cost:
            return None
        for low, high in zip(self.points, self.points[1:]):
            if cost <= high.cost:
                return low.gain + (cost - low.cost) / (high.cost - low.cost) * (high.gain - low.gain)
        return self.points[-1].gain

    def gain_within(self, cost: float) -> float | None:
        """The frontier's gain at ``cost`` inside the costs the reference was measured at; None outside them. A
        reference that keeps gaining with more budget would reach more past its dearest grid point than that point
        shows, so a flat continuation there would call a dearer candidate 'above' without evidence."""
        if not self.points or cost > self.points[-1].cost:
            return None
        return self.gain_at(cost)


@dataclass(frozen=True)
class FrontierRow:
    """One held-out setting: the candidate's mean cost and gain over seeds, and the frontier's gain there."""

    label: dict  # the held-out setting (the task's settings and budget; seed removed)
    cost: float | None
    gain: float | None
    frontier_gain: float | None
    status: str  # "ok" | "failed" (a seed of the candidate failed) | "no frontier" | "outside" (cheaper or dearer)


@dataclass(frozen=True)
class FrontierVerdict:
    name: str
    reference: str
    gain: str  # "fitness" or a named number
    gain_label: str
    cost_label: str
    word: str  # "above" | "on" | "below" | "cannot tell" | "not enough data"
    text: str
    evidence: SettingsEvidence | None
    failed: int  # held-out settings where a seed of the candidate failed
    unplaced: int  # settings with no frontier to compare with, or where the candidate was cheaper than all of it
    rows: tuple[FrontierRow, ...]


def envelope_for(index: PointIndex, reference: str, label: dict, seed: int, trade_off: TradeOff,
                 gain: str) -> Envelope:
    """The reference's frontier for a held-out setting and seed: all its points that differ from the setting only
    in the knobs (the held-out run itself, every grid point of any setting, the untrained start)."""
    knobs = [k.name for k in trade_off.knobs] + ["budget", "seed"]
    group = settings_key(label, knobs)
    points = []
    for record in index.of(reference):
        if int(record.setting.get("seed", 0)) != seed or settings_key(record.setting, knobs) != group:
            continue
        cost, value = point_value(record, trade_off.cost), point_value(record, gain)
        if cost is not None and value is not None:
            points.append(Point(cost, value))
    return Envelope.of(points)


def frontier_verdict(index: PointIndex, trade_off: TradeOff, candidate: str, reference: str, gain: str,
                     gain_label: str) -> FrontierVerdict:
    """Place ``candidate``'s held-out points against ``reference``'s frontier on ``gain``."""
    mine, theirs, rows, failed, unplaced = [], [], [], 0, 0
    for setting in index.heldout_settings(candidate):
        gains, frontier, costs, status = [], [], [], "ok"
        for seed in setting.seeds:
            record = index.get(candidate, {**setting.label, "seed": seed})
            cost, value = point_value(record, trade_off.cost), point_value(record, gain)
            if cost is None or value is None:
                status = "failed"
                break
            matched = envelope_for(index, reference, setting.label, seed, trade_off, gain)
            at = matched.gain_within(cost)
            if at is None:
                status = "outside" if matched.points else "no frontier"
                continue
            gains.append(value), frontier.append(at), costs.append(cost)
        if status == "failed":
            failed += 1
        elif not gains:
            unplaced += 1
        else:
            mine.append(gains), theirs.append(frontier)
            status = "ok"
        mean = (lambda values: sum(values) / len(values) if values and status == "ok" else None)  # noqa: E731
        rows.append(FrontierRow(setting.label, mean(costs), mean(gains), mean(frontier), status))
    evidence = settings_evidence(mine, theirs) if mine else None
    word, text = _words(evidence, failed, unplaced, reference, gain_label, trade_off)
    return FrontierVerdict(candidate, reference, gain, gain_label, trade_off.cost_label, word, text, evidence,
                           failed, unplaced, tuple(rows))


def _words(evidence: SettingsEvidence | None, failed: int, unplaced: int, reference: str, gain_label: str,
           trade_off: TradeOff) -> tuple[str, str]:
    where = f"{reference}'s frontier ({trade_off.knobs_text()}) on {gain_label} at matched {trade_off.cost_label}"
    notes = "".join([f"; failed on {failed} held-out setting{'s' * (failed != 1)}" if failed else "",
                     f"; {unplaced} setting{'s' * (unplaced != 1)} could not be placed" if unplaced else ""])
    if evidence is None:
        return "not enough data", f"cannot place against {where}: no held-out setting with a frontier{notes}"
    counts = (f"above it on {evidence.wins} of {evidence.settings} held-out settings ({seeds_phrase(evidence)}), "
              f"{evidence_phrase(evidence, what='mean gap')}{notes}")
    return verdict_words(evidence, failed, where, counts, (("above", f"above {where}: {counts}"),
                                                          ("below", f"below {where}: {counts}"),
                                                          ("on", f"on {where}: {counts}")))


def frontier_verdicts(index: PointIndex, trade_off: TradeOff, candidate: str, reference: str,
                      gain_labels: dict[str, str]) -> tuple[FrontierVerdict, ...]:
    """One verdict per gain of the trade-off, the headline's first."""
    return tuple(frontier_verdict(index, trade_off, candidate, reference, gain, gain_labels.get(gain, gain))
                 for gain in trade_off.gains)


def has_frontier_points(records: Sequence[Any]) -> bool:
    return any(r.suite == FRONTIER_SUITE for r in records) and any(r.suite == HELDOUT_SUITE for r in records)
