"""Helpers several test files share, imported by name like fake_openai_server (pytest puts tests/ on sys.path).

Kept light: psutil and click are imported where used, so a test file that needs neither does not need them.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

from llm2.archive import Archive, ArchiveError, CandidateRecord, RunInfo

LLM2 = [sys.executable, "-m", "llm2.cli"]


def make_run(**changes) -> RunInfo:
    """A RunInfo with plain defaults; ``changes`` sets the fields a test cares about."""
    fields = dict(run_id="run-1", task="preference-synthetic", proposer="symbolic", model="", config={"beta": 0.05},
                  seeds={"seed": 0}, versions={"llm2": "0.1.0"}, started_at=1000.0, finished_at=None,
                  status="running")
    return RunInfo(**{**fields, **changes})


def invoke_llm2(*arguments: str, env: dict[str, str] | None = None):
    """The command line, in this process (the imports are paid once): exit code 0 and no traceback, or fail."""
    from click.testing import CliRunner

    from llm2.cli import main

    result = CliRunner(env=env).invoke(main, list(arguments), catch_exceptions=True)
    assert result.exit_code == 0 and result.exception is None, (result.output[-3000:], result.exception)
    assert "Traceback" not in result.output
    return result


def llm2_here(*arguments: str) -> subprocess.CompletedProcess:
    """The command line in this process, for the checks of bad input: a real process pays the torch imports again
    per call. An exception the command lets escape fails the test (a real process would print its traceback)."""
    from click.testing import CliRunner

    from llm2.cli import main

    result = CliRunner().invoke(main, list(arguments), catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), (arguments, result.exception)
    return subprocess.CompletedProcess(["llm2", *arguments], result.exit_code, result.stdout, result.stderr)


def import_file(path: str | os.PathLike, name: str) -> ModuleType:
    """The Python file at ``path`` imported as module ``name``; it is in sys.modules while it runs (a dataclass or
    a pickle looks its module up there) and removed after, so the next test's import starts afresh."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def descendants() -> set[int]:
    """The pids of every process below this one."""
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True)}


# --- kill a run, then resume it ------------------------------------------------------------------------------------

def start_in_session(command: list[str]) -> subprocess.Popen:
    """``command`` in a new session, so os.killpg takes it and its workers down together, as a real kill -9 of a job
    would; stdout and stderr together, unbuffered, for the message when it dies early."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for_archive(run_dir: Path, process: subprocess.Popen, reached: Callable[[Archive], bool], what: str,
                     timeout_s: float = 240, poll_s: float = 0.05) -> None:
    """Poll the run's archive until ``reached(archive)``; fail when the process ends first or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else "the process ended first"
        try:
            with Archive.open(run_dir, readonly=True) as archive:
                if reached(archive):
                    return
        except (ArchiveError, sqlite3.DatabaseError):
            pass  # not created yet, or the writer is still creating the schema
        time.sleep(poll_s)
    raise AssertionError(f"the run never reached {what}")


def assert_untouched(before: Iterable[CandidateRecord], after: Iterable[CandidateRecord]) -> None:
    """Nothing evaluated again: each candidate of ``before`` is in ``after`` with the same result and code."""
    after = list(after)
    for old in before:
        new = next(c for c in after if c.id == old.id)
        assert (new.status, new.fitness, new.finished_at, new.code) == (old.status, old.fitness, old.finished_at,
                                                                         old.code), old.name
