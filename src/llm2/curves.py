"""Training curves a task hands back beside the weights (name -> values per recorded step), e.g. the loss and the
margin every few steps. They come from the candidate's process, so they are untrusted numbers: only a few short
lists of floats under plain names pass; they feed the proposer's feedback and the report, never a score."""

from __future__ import annotations

import math
import re

MAX_CURVES = 8
MAX_POINTS = 256
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def clean_curves(value: object) -> dict[str, list[float]]:
    """The valid part of what a child sent: at most MAX_CURVES curves of at most MAX_POINTS numbers each (a value
    that is not a finite number becomes NaN); anything else is dropped."""
    if not isinstance(value, dict):
        return {}
    curves: dict[str, list[float]] = {}
    for name, points in list(value.items())[:MAX_CURVES]:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or not isinstance(points, list):
            continue
        curves[name] = [_number(p) for p in points[:MAX_POINTS]]
    return curves


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    number = float(value)
    return number if math.isfinite(number) else math.nan


def subsample(values: list[float], points: int) -> list[float]:
    """At most ``points`` values, evenly spaced, the first and the last kept."""
    if len(values) <= points:
        return list(values)
    last = len(values) - 1
    return [values[round(i * last / (points - 1))] for i in range(points)]
