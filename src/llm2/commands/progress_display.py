"""How the command line shows long work that tasks and the held-out suite report (``llm2.progress``): rich
progress bars on a terminal, one plain line per step (and per quarter of a long one) on stderr otherwise, so a log
file or a test sees what happened without control characters."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

from llm2.progress import showing


class RichReporter:
    """Nested steps as rich progress bars on a terminal's stderr."""

    def __init__(self, console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, \
            TimeElapsedColumn

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console)
        self.steps: list[tuple[int, int | None]] = []  # (rich's task id, total)

    def begin(self, text: str, total: int | None) -> None:
        if not self.steps:
            self.progress.start()
        self.steps.append((self.progress.add_task(text, total=total), total))

    def update(self, done: int) -> None:
        if self.steps:
            self.progress.update(self.steps[-1][0], completed=done)

    def end(self) -> None:
        if not self.steps:
            return
        task, total = self.steps.pop()
        self.progress.update(task, total=total or 1, completed=total or 1)
        if not self.steps:
            self.progress.stop()


class LineReporter:
    """One line when a step starts, at each quarter of a step with a total, and when it ends."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.steps: list[tuple[str, int | None, float, list[int]]] = []  # text, total, start, quarters shown

    def _say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def begin(self, text: str, total: int | None) -> None:
        self.steps.append((text, total, time.monotonic(), [0]))
        self._say(f"{text}..." if total is None else f"{text}: 0/{total}")

    def update(self, done: int) -> None:
        if not self.steps:
            return
        text, total, _, quarters = self.steps[-1]
        if total and done < total and done * 4 // total > quarters[0]:
            quarters[0] = done * 4 // total
            self._say(f"{text}: {done}/{total}")

    def end(self) -> None:
        if self.steps:
            text, total, started, _ = self.steps.pop()
            count = "" if total is None else f" {total}/{total}"
            self._say(f"{text}:{count} done in {time.monotonic() - started:.1f} s")


@contextmanager
def progress_on_stderr() -> Iterator[None]:
    """Show the steps reported inside the block on stderr."""
    from rich.console import Console

    console = Console(stderr=True)
    reporter = RichReporter(console) if console.is_terminal else LineReporter(sys.stderr)
    with showing(reporter):
        try:
            yield
        finally:
            while reporter.steps:  # an error inside a step: close what is still open, so the terminal is left clean
                reporter.end()
