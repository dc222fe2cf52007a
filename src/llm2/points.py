"""A run's evaluation points (archive ``evaluations`` rows) indexed by objective, setting and seed, for the held-out
and frontier verdicts: both ``llm2 heldout`` and the report read the same points through this index, so they reach
the same numbers. When a point was measured more than once (``llm2 heldout`` run again), its latest record counts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable

HELDOUT_SUITE = "heldout"
FRONTIER_SUITE = "frontier"  # the reference baseline swept over a trade-off's knobs


def settings_key(label: dict, leave_out: Iterable[str] = ("seed",)) -> str:
    """A setting's label as a key, without the named entries (by default the seed)."""
    skip = set(leave_out)
    return json.dumps({k: v for k, v in label.items() if k not in skip}, sort_keys=True)


def point_value(record: Any, key: str) -> float | None:
    """The fitness (``key == "fitness"``) or a named number of an ok record; None when missing or not finite."""
    if record is None or record.status != "ok":
        return None
    value = record.fitness if key == "fitness" else record.value(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass(frozen=True)
class HeldoutSetting:
    """One held-out setting (its label without the seed) and the seeds it was measured with."""

    key: str
    label: dict  # the label of its first seed, seed removed
    seeds: tuple[int, ...]


class PointIndex:
    """The latest record per (objective, full label), from any suites given."""

    def __init__(self, records: Iterable[Any], suites: Iterable[str] = (HELDOUT_SUITE, FRONTIER_SUITE)):
        wanted = set(suites)
        self._latest: dict[tuple[str, str], Any] = {}
        for record in records:  # in the order they were recorded: a later one replaces an earlier one
            if record.suite in wanted and isinstance(record.setting, dict):
                self._latest[(record.candidate_name, settings_key(record.setting, ()))] = record

    def get(self, name: str, label: dict) -> Any:
        return self._latest.get((name, settings_key(label, ())))

    def of(self, name: str, suite: str | None = None) -> list[Any]:
        return [r for (n, _), r in self._latest.items() if n == name and (suite is None or r.suite == suite)]

    def heldout_settings(self, name: str) -> list[HeldoutSetting]:
        """The held-out settings ``name`` was measured at, in the order first recorded."""
        found: dict[str, tuple[dict, list[int]]] = {}
        for record in sorted(self.of(name, HELDOUT_SUITE), key=lambda r: r.id):
            key = settings_key(record.setting)
            label = {k: v for k, v in record.setting.items() if k != "seed"}
            found.setdefault(key, (label, []))[1].append(int(record.setting.get("seed", 0)))
        return [HeldoutSetting(key, label, tuple(sorted(set(seeds)))) for key, (label, seeds) in found.items()]
