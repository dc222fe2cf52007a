"""A task from outside the package (tests/example_task.py, the one docs/tasks.md walks through) runs through the
whole tool: discover with a kill and a resume, leaderboard, export, evaluate of the export, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from click.testing import CliRunner

from llm2.archive import Archive
from llm2.cli import main
from testkit import LLM2, start_in_session, wait_for_archive

TASK = f"{Path(__file__).parent / 'example_task.py'}:RobustRegression"
REPLIES = [
    {"thought": "Huber-like: quadratic near zero, linear in the tails.", "name": "huberish",
     "code": "def huberish(prediction, target):\n    r = (prediction - target).abs()\n"
             "    return torch.where(r < 1.0, 0.5 * r * r, r - 0.5)\n"},
    {"thought": "Cauchy: grows only logarithmically.", "name": "cauchy",
     "code": "def cauchy(prediction, target):\n    return torch.log1p((prediction - target) ** 2)\n"},
    {"thought": "Wrong shape on purpose.", "name": "mean_only",
     "code": "def mean_only(prediction, target):\n    return ((prediction - target) ** 2).mean()\n"},
    {"thought": "Trimmed squares.", "name": "trimmed",
     "code": "def trimmed(prediction, target):\n    return torch.clamp((prediction - target) ** 2, max=4.0)\n"},
]


def test_an_external_task_runs_discover_resume_export_evaluate_and_report(tmp_path):
    replies = tmp_path / "replies.jsonl"
    replies.write_text("".join(json.dumps(r) + "\n" for r in REPLIES))
    run_dir = tmp_path / "run"
    command = [*LLM2, "discover", "--task", TASK, "--proposer", "replay", "--replay", str(replies), "--generations",
               "4", "--population", "1", "--seeds", "1", "--workers", "1", "--run-dir", str(run_dir)]
    # first session: killed as soon as the first proposal is stored
    process = start_in_session(command)
    wait_for_archive(run_dir, process, lambda archive: any(c.generation > 0 for c in archive.candidates()),
                     "its first stored proposal", poll_s=0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    # second session: resumes and finishes; the replies already received are used, not asked for again
    with Archive.open(run_dir, readonly=True) as archive:
        received = len([r for r in archive.requests() if r.reply is not None])
    assert received >= 1
    replies.write_text("".join(json.dumps(r) + "\n" for r in REPLIES[received:]))
    resumed = subprocess.run([*command[:-2], "--run-dir", str(run_dir), "--resume"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "huberish" in resumed.stdout and "squared (reference)" in resumed.stdout
    with Archive.open(run_dir, readonly=True) as archive:
        proposals = {c.name: c for c in archive.candidates() if c.generation > 0}
        assert sorted(proposals) == ["cauchy", "huberish", "mean_only", "trimmed"]
        assert proposals["mean_only"].status == "invalid" and "one loss per example" in proposals["mean_only"].error
        assert all(proposals[n].status == "ok" for n in ("cauchy", "huberish", "trimmed"))
        squared = next(c for c in archive.candidates() if c.name == "squared")
        assert proposals["huberish"].fitness > squared.fitness  # robust beats squared under 20 % outliers
        assert proposals["huberish"].value("mse") is not None and proposals["huberish"].sandbox

    runner = CliRunner()
    board = runner.invoke(main, ["leaderboard", str(run_dir), "--json"])
    assert board.exit_code == 0, board.output
    assert json.loads(board.output)["task"]["reference_baseline"] == "squared"

    exported = tmp_path / "best.py"
    result = runner.invoke(main, ["export", str(run_dir), "--top", "3", "--out", str(exported)])
    assert result.exit_code == 0, result.output
    text = exported.read_text()
    assert "regression loss" in text.lower() and "def huberish(prediction, target):" in text

    evaluated = runner.invoke(main, ["evaluate", "--task", TASK, "--objective-file", f"{exported}:huberish",
                                     "--objective", "squared", "--seeds", "1", "--workers", "1",
                                     "-o", "outliers=0.3"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "huberish" in evaluated.output and "outliers" in evaluated.output

    report = runner.invoke(main, ["report", str(run_dir)])
    assert report.exit_code == 0, report.output
    page = (run_dir / "report" / "index.html").read_text()
    assert "huberish" in page and "-MSE" in page
