"""A discovery killed with SIGKILL mid-evaluation resumes with nothing lost and nothing evaluated twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from llm2.archive import Archive

LLM2 = [sys.executable, "-m", "llm2.cli"]


def discover(run_dir: Path, *extra: str) -> subprocess.Popen:
    # A new session, so the kill below takes the loop and its workers down together, as a real kill -9 of a job would.
    return subprocess.Popen([*LLM2, "discover", "--run-dir", str(run_dir), "--workers", "1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for_mid_evaluation(run_dir: Path, process: subprocess.Popen, timeout_s: float = 240) -> None:
    """Until at least two proposals are finished and another one is being evaluated."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        if (run_dir / "archive.sqlite").exists():
            try:
                archive = Archive.open(run_dir, readonly=True)
                proposals = [c for c in archive.candidates() if c.generation > 0]
                archive.close()
            except Exception:  # noqa: BLE001 - the writer may still be creating the schema
                proposals = []
            finished = [c for c in proposals if c.status != "pending"]
            if len(finished) >= 2 and any(c.status == "pending" for c in proposals):
                return
        time.sleep(0.05)
    raise AssertionError("the discovery never reached the middle of an evaluation")


def snapshot(run_dir: Path):
    archive = Archive.open(run_dir, readonly=True)
    try:
        return archive.candidates(), archive.messages()
    finally:
        archive.close()


def test_sigkill_mid_evaluation_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    options = ["--generations", "3", "--population", "2", "--seeds", "1", "--seed", "5"]
    first = discover(run_dir, *options)
    wait_for_mid_evaluation(run_dir, first)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    before, messages_before = snapshot(run_dir)
    finished_before = {c.id: c for c in before if c.status not in ("pending",)}
    assert any(c.status == "pending" for c in before)

    second = discover(run_dir, "--resume")
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    after, messages_after = snapshot(run_dir)

    proposals = [c for c in after if c.generation > 0]
    assert len(proposals) == 6 and sorted(c.index for c in after) == list(range(len(after)))
    assert not any(c.status == "pending" for c in after)
    for candidate_id, old in finished_before.items():
        new = next(c for c in after if c.id == candidate_id)
        # untouched: not evaluated again
        assert (new.status, new.fitness, new.finished_at, new.code) == (old.status, old.fitness, old.finished_at,
                                                                         old.code)
    # the conversation continued where it was: the old log is a prefix of the new one, and it still alternates
    assert [(m.role, m.content) for m in messages_after[: len(messages_before)]] == [
        (m.role, m.content) for m in messages_before]
    roles = [m.role for m in messages_after]
    assert roles[0] == "system" and all(a != b for a, b in zip(roles[1:], roles[2:]))
    assert {m.candidate_id for m in messages_after if m.candidate_id} == {c.id for c in proposals}
    assert Archive.open(run_dir, readonly=True).run.status == "finished"
