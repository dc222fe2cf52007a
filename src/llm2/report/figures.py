"""What a task's figures receive and return: the report knows figures, the task knows what to draw.

A task's ``figures(context)`` draws PNGs into ``context.out_dir`` from the run's records and returns ``Figure``s.
Figures that need candidate code evaluated (a loss's shape, say) go through ``context.call_confined``, which runs
the task's own trusted entry function on each candidate inside a confined process.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from llm2.archive.records import CandidateRecord, EvaluationRecord, RunInfo


@dataclass(frozen=True)
class Figure:
    file: str  # the PNG beside index.html
    data_uri: str
    title: str
    caption: str
    note: str = ""  # what could not be drawn, or how to get more points

    @classmethod
    def from_png(cls, path: Path, title: str, caption: str, note: str = "") -> "Figure":
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        return cls(path.name, f"data:image/png;base64,{encoded}", title, caption, note)


@dataclass(frozen=True)
class MissingFigure:
    """A figure the task would draw once the run has the data for it: shown as a note saying how to get it."""

    title: str
    note: str


@dataclass(frozen=True)
class FigureContext:
    run: RunInfo
    run_dir: Path
    task_spec: str  # how to load the task again (for the confined process)
    settings: Any  # the run's task settings
    candidates: Sequence[CandidateRecord]
    evaluations: Sequence[EvaluationRecord]
    best: Sequence[CandidateRecord]  # the best scored proposals, best first
    reference: CandidateRecord | None  # the reference baseline as measured in this run
    out_dir: Path
    timeout_s: float = 120.0
    allow_missing: tuple[str, ...] = field(default=())  # sandbox layers the run's user opted out of

    def call_confined(self, entry: str, items: Sequence[tuple[str, str]], payload: dict) -> list:
        from llm2.sandbox.confined_call import call_confined

        return call_confined(self.task_spec, entry, items, payload, self.timeout_s, self.allow_missing)
