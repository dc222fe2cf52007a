"""Reward–KL frontier points, from an ``llm2 evaluate --json`` file or from a run's evaluation records, and whether
one objective's points lie on or above another's frontier.

The reward is the gold reward when the task reports it (``gold_reward``), else the fitness; the KL is
KL(π‖π_ref). A frontier varies β alone: only points of one suite and one world (world seed, label noise) are used.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from llm2.stats import mean_std
from llm2.tasks.preference.plots import FrontierPoint, FrontierSeries, reference_line


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _reward(fitness: Any, values: dict) -> Any:
    return values.get("gold_reward", fitness)


def _series(points: dict[str, dict[float, list[tuple[float, float]]]]) -> list[FrontierSeries]:
    series = []
    for name, by_beta in points.items():
        measured = []
        for beta, pairs in sorted(by_beta.items()):
            reward_mean, reward_std = mean_std([r for r, _ in pairs])
            kl_mean, kl_std = mean_std([k for _, k in pairs])
            measured.append(FrontierPoint(beta, reward_mean, kl_mean, reward_std, kl_std))
        series.append(FrontierSeries(name, tuple(measured)))
    return series


def frontier_from_evaluate_json(path: Path) -> tuple[list[FrontierSeries], list[str]]:
    """(series per objective, notes on skipped rows); ValueError with a readable reason for a file that is not
    ``llm2 evaluate --json`` output of a preference task."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a JSON file: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ValueError(f"{path} is not an `llm2 evaluate --json` file: it has no list under \"results\"")
    grouped: dict[str, dict[float, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    notes = []
    for number, row in enumerate(data["results"], start=1):
        if not isinstance(row, dict) or not isinstance(row.get("objective"), str):
            notes.append(f"row {number}: no objective name; skipped")
            continue
        setting = row.get("setting") if isinstance(row.get("setting"), dict) else {}
        metrics = row.get("metrics") if isinstance(row.get("metrics"), dict) else {}
        kl = (metrics.get("kl") or {}).get("mean") if isinstance(metrics.get("kl"), dict) else None
        gold = metrics.get("gold_reward")
        reward = gold.get("mean") if isinstance(gold, dict) else row.get("fitness_mean")
        if row.get("status", "ok") != "ok" or not all(finite(v) for v in (setting.get("beta"), reward, kl)):
            reason = row.get("error") or f"status {row.get('status')!r}, no finite reward/KL"
            notes.append(f"{row['objective']} at β={setting.get('beta')}: {reason}; skipped")
            continue
        grouped[row["objective"]][float(setting["beta"])].append((float(reward), float(kl)))
    return _series(grouped), notes


def frontier_from_evaluations(evaluations: Iterable[Any]) -> list[FrontierSeries]:
    """Series from archive evaluation records, of the one suite and world measured at the most β values; each point
    is the mean ± std over the training seeds at that β."""
    usable = [r for r in evaluations
              if r.status == "ok" and finite(_reward(r.fitness, r.metrics)) and finite(r.value("kl"))
              and finite((r.setting or {}).get("beta"))]
    betas_per_world: dict[tuple, set[float]] = defaultdict(set)
    for record in usable:
        betas_per_world[world_of(record)].add(float(record.setting["beta"]))
    if not betas_per_world:
        return []
    world = max(betas_per_world, key=lambda w: (len(betas_per_world[w]), w[1] == 0))
    grouped: dict[str, dict[float, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for record in usable:
        if world_of(record) == world:
            grouped[record.candidate_name][float(record.setting["beta"])].append(
                (float(_reward(record.fitness, record.metrics)), float(record.value("kl"))))
    return _series(grouped)


def world_of(record: Any) -> tuple:
    return record.suite, record.setting.get("world_seed", 0), record.setting.get("label_noise")


def has_frontier(series: Sequence[FrontierSeries]) -> bool:
    """A frontier needs at least one objective measured at two or more β values."""
    return any(len({p.beta for p in s.points}) >= 2 for s in series)


@dataclass(frozen=True)
class Dominance:
    """How one objective's points sit against a reference's frontier (reward at matched KL)."""

    name: str
    compared: int  # points inside the reference's KL range
    above: int  # of those, on or above the reference's interpolated reward
    margins: tuple[float, ...]  # reward − the reference's reward at the same KL, per compared point

    @property
    def verdict(self) -> str:
        if not self.compared:
            return "no point within the reference's KL range"
        if self.above == self.compared:
            return f"on or above the frontier at all {self.compared} points"
        return f"on or above the frontier at {self.above} of {self.compared} points"


def reward_at(reference: FrontierSeries, kl: float) -> float | None:
    """The reference's reward at ``kl`` on the line the frontier figure draws for it (its points joined in order
    of KL); None outside them."""
    points = reference_line(reference)
    for low, high in zip(points, points[1:]):
        if low.kl <= kl <= high.kl:
            if high.kl == low.kl:
                return max(low.reward, high.reward)
            share = (kl - low.kl) / (high.kl - low.kl)
            return low.reward + share * (high.reward - low.reward)
    return None


def dominance(series: FrontierSeries, reference: FrontierSeries) -> Dominance:
    margins = []
    for point in series.points:
        matched = reward_at(reference, point.kl)
        if matched is not None:
            margins.append(point.reward - matched)
    above = sum(1 for m in margins if m >= 0)
    return Dominance(series.name, len(margins), above, tuple(margins))
