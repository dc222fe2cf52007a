"""The outside task in examples/robust-weights, installed with pip from its own folder, found through its entry
points (the task and its own offline proposer), runs discover → leaderboard → heldout as a user would run it; the
progress that its data building and the held-out suite report shows on stderr."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import LLM2

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "robust-weights"
DISTRIBUTION = "llm2-robust-weights"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The example installed into this interpreter's environment from a copy of its folder (the build writes
    beside the sources); no dependencies fetched (llm2, numpy and scikit-learn are already here) and no build
    isolation, so nothing is downloaded; uninstalled afterwards."""
    source = tmp_path_factory.mktemp("example") / "robust-weights"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    result = subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    yield
    subprocess.run([*pip, "uninstall", "-y", DISTRIBUTION], capture_output=True, text=True, timeout=120)


def llm2(*arguments: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*LLM2, *arguments], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_the_outside_task_installs_and_runs_discover_leaderboard_heldout(installed, tmp_path):
    env = {**os.environ, "LLM2_CACHE_DIR": str(tmp_path / "cache")}
    listed = llm2("tasks", env=env)
    assert listed.returncode == 0 and "robust-weights" in listed.stdout

    run_dir = tmp_path / "run"
    discovered = llm2("discover", "--task", "robust-weights", "--generations", "2", "--population", "2",
                      "--seeds", "1", "--workers", "1", "--run-dir", str(run_dir), env=env)
    assert discovered.returncode == 0, discovered.stderr[-3000:]
    assert "robust-weights: making data set 0" in discovered.stderr  # the task's build, through llm2.progress

    board = llm2("leaderboard", str(run_dir), "--json", env=env)
    assert board.returncode == 0, board.stderr[-2000:]
    data = json.loads(board.stdout)
    assert data["run"]["proposer"] == "robust-weights-offline"  # the task's own, chosen without --proposer
    assert data["task"]["reference_baseline"] == "least_squares"
    rows = {row["name"]: row for row in data["rows"]}
    proposals = [row for row in data["rows"] if row["generation"] > 0 and row["status"] == "ok"]
    assert len(proposals) >= 3
    # any robust weighting beats least squares under 20 % wild outliers
    assert proposals[0]["fitness"] > rows["least_squares"]["fitness"]
    assert proposals[0]["metrics"]["mse"] < rows["least_squares"]["metrics"]["mse"]

    verdicts = tmp_path / "heldout.json"
    heldout = llm2("heldout", str(run_dir), "--top", "1", "--seeds", "2", "--workers", "1", "--json",
                   str(verdicts), env=env)
    assert heldout.returncode == 0, heldout.stderr[-3000:]
    assert "preparing 3 held-out settings: 3/3" in heldout.stderr
    assert "held-out settings done" in heldout.stderr and ": 3/3 done in" in heldout.stderr
    (verdict,) = json.loads(verdicts.read_text())
    assert verdict["pairs"] == 6 and verdict["failures"] == 0  # 3 settings × 2 seeds
    assert verdict["verdict"] == "better than least_squares on -MSE"
