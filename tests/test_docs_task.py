"""docs/tasks.md is enough to write a task: tests/docs_task.py was written from that page alone. It runs through
discover (replayed replies, two of them breaking rules the page lists), leaderboard and heldout."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from testkit import LLM2

TASK = f"{Path(__file__).parent / 'docs_task.py'}:Location"
REPLIES = [
    {"thought": "Trim the two most extreme draws at each end.", "name": "trimmed",
     "code": "def trimmed(samples):\n    ordered = samples.sort(dim=1).values\n"
             "    return ordered[:, 2:-2].mean(dim=1)\n"},
    {"thought": "A class holding the estimator.", "name": "boxed",
     "code": "class Box:\n    pass\n\n\ndef boxed(samples):\n    return samples.median(dim=1).values\n"},
    {"thought": "Seed the generator first.", "name": "seeded",
     "code": "def seeded(samples):\n    torch.manual_seed(0)\n    return samples.mean(dim=1)\n"},
    {"thought": "Median of means over four groups.", "name": "median_of_means",
     "code": "def median_of_means(samples):\n    size = samples.shape[1] // 4\n"
             "    groups = samples[:, :4 * size].reshape(samples.shape[0], 4, size).mean(dim=2)\n"
             "    return groups.median(dim=1).values\n"},
]


def llm2(*arguments: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*LLM2, *arguments], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_a_task_written_from_the_docs_runs_discover_leaderboard_heldout(tmp_path):
    env = {**os.environ, "LLM2_CACHE_DIR": str(tmp_path / "cache")}
    replies = tmp_path / "replies.jsonl"
    replies.write_text("".join(json.dumps(r) + "\n" for r in REPLIES))
    run_dir = tmp_path / "run"
    discovered = llm2("discover", "--task", TASK, "--proposer", "replay", "--replay", str(replies),
                      "--generations", "4", "--population", "1", "--seeds", "1", "--workers", "1",
                      "--run-dir", str(run_dir), env=env)
    assert discovered.returncode == 0, discovered.stderr[-3000:]

    board = llm2("leaderboard", str(run_dir), "--all", "--json", env=env)
    assert board.returncode == 0, board.stderr[-2000:]
    rows = {row["name"]: row for row in json.loads(board.stdout)["rows"]}
    assert rows["boxed"]["status"] == "invalid" and "needs no classes" in rows["boxed"]["error"]
    assert rows["seeded"]["status"] == "invalid" and "'manual_seed' is not allowed" in rows["seeded"]["error"]
    assert rows["trimmed"]["status"] == "ok" and rows["median_of_means"]["status"] == "ok"
    assert rows["trimmed"]["fitness"] > rows["mean"]["fitness"]  # heavy tails: trimming beats the mean
    assert rows["trimmed"]["metrics"]["worst"] < rows["mean"]["metrics"]["worst"]

    verdicts = tmp_path / "heldout.json"
    heldout = llm2("heldout", str(run_dir), "--top", "2", "--seeds", "2", "--workers", "1", "--json",
                   str(verdicts), env=env)
    assert heldout.returncode == 0, heldout.stderr[-3000:]
    by_name = {v["name"]: v for v in json.loads(verdicts.read_text())}
    assert set(by_name) == {"trimmed", "median_of_means"}
    assert all(v["pairs"] == 6 and v["failures"] == 0 for v in by_name.values())  # 3 settings × 2 seeds
    assert by_name["trimmed"]["verdict"] == "better than mean on -MSE"
