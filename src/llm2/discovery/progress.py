"""A live status line while a discovery runs (one line per event when the output is not a terminal)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from llm2.archive.text import clean_text


@dataclass
class Progress:
    generations: int
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    generation: int = 0
    proposals: int = 0  # the proposer's candidates, as the run's summary counts them
    baselines: int = 0  # the task's known algorithms, measured first
    failed: int = 0
    duplicates: int = 0
    best_name: str = "-"
    best_fitness: float | None = None
    eval_seconds: float = 0.0
    evals: int = 0
    started: float = field(default_factory=time.monotonic)
    waiting: str = ""  # what the proposer said while we wait for it (a retry, a dropped parameter)

    def record(self, *, status: str, name: str, fitness: float | None, seconds: float, evals: int,
               proposal: bool = True) -> None:
        self.proposals += proposal
        self.baselines += not proposal
        self.failed += proposal and status in ("invalid", "failed", "timeout")
        self.duplicates += proposal and status == "duplicate"
        self.eval_seconds += seconds
        self.evals += evals
        if status == "ok" and fitness is not None and (self.best_fitness is None or fitness > self.best_fitness):
            self.best_name, self.best_fitness = clean_text(name), fitness
        self.waiting = ""
        self.show()

    def note(self, text: str) -> None:
        """A proposer event (``Proposer.on_event``), shown at the end of the line until the next candidate."""
        self.waiting = clean_text(text)  # a proposer's words: no escape sequences on the user's terminal
        self.show()

    def line(self) -> str:
        best = "-" if self.best_fitness is None else f"{self.best_fitness:.4f} ({self.best_name})"
        per_eval = f"{self.eval_seconds / self.evals:.1f} s/eval" if self.evals else "- s/eval"
        elapsed = time.monotonic() - self.started
        line = (f"generation {self.generation}/{self.generations} · {self.proposals} proposals "
                f"({self.failed} failed, {self.duplicates} duplicates) · {self.baselines} baselines · best {best} · "
                f"{per_eval} · {elapsed:.0f} s")
        return f"{line} · proposer: {self.waiting}" if self.waiting else line

    def show(self) -> None:
        if self.stream.isatty():
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.stream.isatty():
            self.stream.write("\n")
            self.stream.flush()
