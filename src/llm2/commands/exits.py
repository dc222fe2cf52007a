"""The exit codes every ``llm2`` command uses (docs/cli.md has the table), and the errors that carry them.

Each error is a click exception: one line on stderr, no traceback, and its code.
"""

from __future__ import annotations

import click

DONE = 0  # the command did what it was asked
WORK_FAILED = 1  # the input was fine but the work failed (an evaluation, a write, a task that cannot build)
BAD_INPUT = 2  # bad usage or input: an option, a file, a task, a run directory (missing, or in use)
STOPPED = 3  # stopped early by a budget (cost, generations) or by the proposer; resumable
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it); resumable


class WorkFailed(click.ClickException):
    exit_code = WORK_FAILED


class BadInput(click.ClickException):
    exit_code = BAD_INPUT


class Interrupted(click.ClickException):
    exit_code = INTERRUPTED
