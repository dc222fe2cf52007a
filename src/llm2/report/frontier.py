"""Reward–KL frontier points, from an ``llm2 evaluate --json`` file or from a run's held-out evaluations."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from llm2.report.plots import FrontierPoint, FrontierSeries
from llm2.stats import mean_std


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def frontier_from_evaluate_json(path: Path) -> tuple[list[FrontierSeries], FrontierPoint | None, list[str]]:
    """(series per objective, the reference policy's point or None, notes on skipped rows).

    Raises ValueError with a readable reason when the file is missing or not in ``llm2 evaluate --json`` form.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a JSON file: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ValueError(f"{path} is not an `llm2 evaluate --json` file: it has no list under \"results\"")
    by_objective: dict[str, list[FrontierPoint]] = defaultdict(list)
    notes = []
    for number, row in enumerate(data["results"], start=1):
        if not isinstance(row, dict) or not isinstance(row.get("objective"), str):
            notes.append(f"row {number}: no objective name; skipped")
            continue
        if row.get("status", "ok") != "ok" or not all(finite(row.get(k)) for k in ("beta", "fitness_mean", "kl_mean")):
            reason = row.get("error") or f"status {row.get('status')!r}, no finite fitness/KL"
            notes.append(f"{row['objective']} at β={row.get('beta')}: {reason}; skipped")
            continue
        by_objective[row["objective"]].append(FrontierPoint(
            beta=float(row["beta"]), reward=float(row["fitness_mean"]), kl=float(row["kl_mean"]),
            reward_std=float(row["fitness_std"]) if finite(row.get("fitness_std")) else None,
            kl_std=float(row["kl_std"]) if finite(row.get("kl_std")) else None))
    reference = data.get("reference")
    reference_point = None
    if isinstance(reference, dict) and finite(reference.get("fitness_mean")) and finite(reference.get("kl_mean")):
        reference_point = FrontierPoint(beta=math.nan, reward=float(reference["fitness_mean"]),
                                        kl=float(reference["kl_mean"]))
    series = [FrontierSeries(name, tuple(points)) for name, points in by_objective.items()]
    return series, reference_point, notes


def frontier_from_evaluations(evaluations: Iterable[Any]) -> list[FrontierSeries]:
    """Series from archive evaluation records (candidate_name, setting, fitness, kl, status).

    A frontier varies β alone: only the records of one suite and world (world_seed, label_noise) are used, the one
    measured at the most β values; each point is the mean ± std over the training seeds at that β.
    """
    usable = [r for r in evaluations
              if r.status == "ok" and finite(r.fitness) and finite(r.kl) and finite((r.setting or {}).get("beta"))]
    betas_per_world: dict[tuple, set[float]] = defaultdict(set)
    for record in usable:
        betas_per_world[world_of(record)].add(float(record.setting["beta"]))
    if not betas_per_world:
        return []
    world = max(betas_per_world, key=lambda w: (len(betas_per_world[w]), w[1:] == (0, None)))
    grouped: dict[str, dict[float, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for record in usable:
        if world_of(record) == world:
            grouped[record.candidate_name][float(record.setting["beta"])].append((record.fitness, record.kl))
    series = []
    for name, by_beta in grouped.items():
        points = []
        for beta, pairs in sorted(by_beta.items()):
            reward_mean, reward_std = mean_std([r for r, _ in pairs])
            kl_mean, kl_std = mean_std([k for _, k in pairs])
            points.append(FrontierPoint(beta, reward_mean, kl_mean, reward_std, kl_std))
        series.append(FrontierSeries(name, tuple(points)))
    return series


def world_of(record: Any) -> tuple:
    return record.suite, record.setting.get("world_seed", 0), record.setting.get("label_noise")


def has_frontier(series: Sequence[FrontierSeries]) -> bool:
    """A frontier needs at least one objective measured at two or more β values."""
    return any(len({p.beta for p in s.points}) >= 2 for s in series)
