"""Temperature schedules (``--temperature-schedule``): the temperature of each request, per proposer and per island,
as the run goes on.

One schedule is written ``[PROPOSER=]SCHEDULE``; the option may be given once per proposer. SCHEDULE is one of

- ``T``: constant, e.g. ``0.7``;
- ``linear:A:B``: from A at the first generation to B at the last;
- ``cosine:A:B``: from A to B along half a cosine (flat at both ends);
- ``islands:S0,S1,...``: one schedule per island (island n uses Sn), each of the three kinds above; as many
  entries as ``--islands``.

PROPOSER is a proposer's label as its candidates record it (``replay:FILE``, ``openai:MODEL``, ``symbolic``) or
only its name (``openai``: every openai proposer without a schedule of its own); without it the schedule is every
proposer's. A proposer with no schedule asks at ``--temperature``. The run's progress is (generation - 1) /
(generations - 1), so a resume that raises ``--generations`` stretches what is left of the schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

KINDS = ("linear", "cosine")


@dataclass(frozen=True)
class Curve:
    kind: str  # constant | linear | cosine
    start: float
    end: float

    def at(self, progress: float) -> float:
        if self.kind == "constant":
            return self.start
        weight = progress if self.kind == "linear" else (1 - math.cos(math.pi * progress)) / 2
        return self.start + (self.end - self.start) * weight


@dataclass(frozen=True)
class Schedule:
    proposer: str | None  # None: every proposer
    curves: tuple[Curve, ...]  # one, or one per island

    def at(self, island: int, progress: float) -> float:
        return self.curves[island % len(self.curves)].at(progress)


def _number(text: str, whole: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"temperature schedule {whole!r}: {text!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"temperature schedule {whole!r}: a temperature must be 0 or more, not {text}")
    return value


def _curve(text: str, whole: str) -> Curve:
    kind, _, rest = text.partition(":")
    if kind in KINDS:
        ends = rest.split(":")
        if len(ends) != 2:
            raise ValueError(f"temperature schedule {whole!r}: {kind} needs two temperatures, {kind}:A:B")
        return Curve(kind, _number(ends[0], whole), _number(ends[1], whole))
    if rest:
        raise ValueError(f"temperature schedule {whole!r}: {kind!r} is not constant, linear:A:B, cosine:A:B or "
                         "islands:S0,S1,...")
    value = _number(text, whole)
    return Curve("constant", value, value)


def parse_schedule(text: str, islands: int = 1) -> Schedule:
    """One ``[PROPOSER=]SCHEDULE``; ValueError with a one-line reason when it is not one."""
    proposer, _, body = text.rpartition("=")
    body = body.strip()
    if not body:
        raise ValueError(f"temperature schedule {text!r} is empty")
    if body.startswith("islands:"):
        entries = body[len("islands:"):].split(",")
        if len(entries) != islands:
            raise ValueError(f"temperature schedule {text!r} gives {len(entries)} island schedule(s); the run has "
                             f"{islands} island(s)")
        curves = tuple(_curve(entry.strip(), text) for entry in entries)
    else:
        curves = (_curve(body, text),)
    return Schedule(proposer.strip() or None, curves)


class Temperatures:
    """Every schedule of a run: the temperature of one request from its proposer's label, island and generation."""

    def __init__(self, specs: Sequence[str], islands: int, labels: Sequence[str] = (), default: float = 0.8):
        self.default = default
        self.schedules = [parse_schedule(spec, islands) for spec in specs]
        targets = [s.proposer for s in self.schedules]
        twice = sorted({t or "every proposer" for t in targets if targets.count(t) > 1})
        if twice:
            raise ValueError(f"temperature schedule given twice for {', '.join(twice)}")
        if labels:
            names = set(labels) | {label.partition(":")[0] for label in labels}
            unknown = [t for t in targets if t is not None and t not in names]
            if unknown:
                raise ValueError(f"temperature schedule for {unknown[0]!r}, which is not one of the run's proposers "
                                 f"({', '.join(labels)})")

    def schedule_of(self, label: str) -> Schedule | None:
        by_target = {s.proposer: s for s in self.schedules}
        for target in (label, label.partition(":")[0], None):
            if target in by_target:
                return by_target[target]
        return None

    def at(self, label: str, island: int, generation: int, generations: int) -> float:
        schedule = self.schedule_of(label)
        if schedule is None:
            return self.default
        progress = min(1.0, max(0.0, (generation - 1) / (generations - 1))) if generations > 1 else 0.0
        return round(schedule.at(island, progress), 6)  # recorded per request: no float noise in the archive
