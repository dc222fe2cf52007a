"""Progress of long work: whoever does the work (a task building its world, the held-out suite) reports its steps
with ``step``; whoever runs it (the command line) decides how they are shown by installing a ``Reporter`` with
``showing``. With no reporter installed (a worker process, a library caller) a step costs nothing and shows nothing,
so a task never needs to know who runs it.

    with step("training the reference policy", total=steps) as advance:
        for done in range(1, steps + 1):
            ...
            advance(done)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Protocol


class Reporter(Protocol):
    def begin(self, text: str, total: int | None) -> None:
        """A step starts (steps nest: a step begun inside another ends before it)."""

    def update(self, done: int) -> None:
        """The innermost step has done ``done`` of its ``total``."""

    def end(self) -> None:
        """The innermost step is over."""


_reporter: Reporter | None = None


@contextmanager
def showing(reporter: Reporter) -> Iterator[None]:
    """Steps reported while the block runs go to ``reporter`` (trusted processes only: the command line)."""
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield
    finally:
        _reporter = previous


def _ignore(done: int) -> None:
    pass


@contextmanager
def step(text: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """One step of long work, ``total`` units long when that is known; yields ``advance(done)``."""
    reporter = _reporter
    if reporter is None:
        yield _ignore
        return
    reporter.begin(text, total)
    try:
        yield reporter.update
    finally:
        reporter.end()
