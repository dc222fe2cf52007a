"""Terminal tables a person can read: the terminal's width, long names wrapped and never cut, one word per count,
no spread from one seed."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import termios
from pathlib import Path

from click.testing import CliRunner

from llm2.archive import Archive
from llm2.cli import main
from llm2.commands.evaluate import Row, print_table
from llm2.discovery.progress import Progress
from llm2.heldout import HeldoutVerdict, SettingRow
from llm2.tasks import load_task
from llm2.task_api.base import Metrics
from llm2.task_api.card import TaskCard
from llm2.tasks.preference.catalog import OBJECTIVES
from testkit import LLM2, make_run

LONG = "adaptive_margin_sigmoid_with_batch_variance_gating_and_a_very_long_descriptive_name_indeed"
TASK = f"{Path(__file__).with_name('example_task.py')}:RobustRegression"


def build_run(run_dir: Path, seeds: int) -> None:
    run = make_run(config={"task": "preference-synthetic", "task_settings": {"beta": 0.05}, "seeds": seeds})
    with Archive.create(run_dir, run, TaskCard.of(load_task("preference-synthetic")).to_dict()) as archive:
        for name, generation, fitness in (("dpo", 0, 0.80), (LONG, 1, 0.85)):
            record = archive.add_candidate(generation=generation, proposer="symbolic", thought="", name=name,
                                           code=OBJECTIVES["dpo"].code if generation == 0 else
                                           OBJECTIVES["hinge"].code, status="pending")
            archive.finish_candidate(record.id, status="baseline" if generation == 0 else "ok", stage="done",
                                     error=None, fitness=fitness, fitness_std=0.0 if seeds == 1 else 0.01,
                                     metrics={"kl": 5.5}, seconds=1.0, feedback="")


def in_terminal(arguments: list[str], columns: int) -> str:
    """The command's output in a real pseudo-terminal of ``columns`` columns (no COLUMNS variable to go by)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")} | {"TERM": "xterm", "NO_COLOR": "1"}
    process = subprocess.Popen([*LLM2, *arguments], stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # EIO: the command ended and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=120) == 0, b"".join(chunks).decode()
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode()).replace("\r", "")


def name_cells(output: str, column: int) -> str:
    """The text of one column of a rich table, its wrapped pieces joined in order."""
    return "".join(line.split("│")[column].strip() for line in output.splitlines() if line.count("│") > column)


def assert_fits(output: str, width: int) -> None:
    """Every line within the width, and every table line closed on the right (rich crops what does not fit)."""
    lines = output.splitlines()
    assert max(len(line) for line in lines) <= width, output
    assert all(line.rstrip()[-1] in "┓┃┩│┘" for line in lines if line[:1] in "┏┃┡│└"), output


def assert_fits_and_whole(output: str, width: int, column: int) -> None:
    assert_fits(output, width)
    assert "…" not in output and LONG in name_cells(output, column), output


def test_leaderboard_uses_the_terminal_width_and_wraps_long_names(tmp_path):
    build_run(tmp_path, seeds=3)
    assert_fits_and_whole(in_terminal(["leaderboard", str(tmp_path)], 100), 100, 2)
    wide = in_terminal(["leaderboard", str(tmp_path)], 240)
    assert any(LONG in line for line in wide.splitlines())  # room enough: on one line
    assert "0.8500 ± 0.0100" in wide


def test_one_seed_shows_no_spread(tmp_path):
    build_run(tmp_path, seeds=1)
    result = CliRunner().invoke(main, ["leaderboard", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "± 0.0000" not in result.output and "fitness (1 seed)" in result.output and "0.8500" in result.output


def test_evaluate_table_wraps_names_and_says_1_seed(capsys, monkeypatch):
    monkeypatch.setattr("llm2.commands.terminal.PIPED_WIDTH", 110)
    task = load_task("preference-synthetic")
    setting = {"beta": 0.05, "text": "β = 0.05"}
    metrics = {c.key: {"mean": 1.0, "std": 0.0} for c in task.metric_columns}
    rows = [Row(LONG, setting, 0.9, 0.0, metrics, 1, 1.5, "ok", None),
            Row("broken", setting, None, None, metrics, 1, 0.1, "invalid", "static check: line 1: syntax error")]
    print_table(task, "judge score", [("β = 0.05", Metrics(fitness=0.4, values={}))], rows)
    output = capsys.readouterr().out
    assert_fits_and_whole(output, 110, 1)
    header = " ".join(line.split("┃")[3].strip() for line in output.splitlines() if line.startswith("┃"))
    assert "± " not in output and header.strip() == "fitness (1 seed)", header


def test_heldout_table_wraps_names(capsys, monkeypatch):
    from llm2.commands.heldout import print_verdicts

    monkeypatch.setattr("llm2.commands.terminal.PIPED_WIDTH", 120)
    verdict = HeldoutVerdict(name=LONG, reference="dpo", fitness_name="judge score", run_fitness=0.85, settings=6,
                             seeds=1, deterministic=False, failures=0, evidence=None, word="cannot tell",
                             verdict="tie", headline="tie",
                             rows=(SettingRow("β = 0.01", {"fitness": 0.8}, {"fitness": 0.7}),))
    print_verdicts([verdict])
    output = capsys.readouterr().out
    assert_fits(output, 120)
    assert "…" not in output and LONG in name_cells(output.split("per held-out setting")[0], 1)


def test_listings_wrap_and_never_double_a_plural(monkeypatch):
    monkeypatch.setattr("llm2.commands.terminal.PIPED_WIDTH", 90)
    objectives = CliRunner().invoke(main, ["objectives", "--task", TASK])
    assert objectives.exit_code == 0, objectives.output
    words = " ".join(objectives.output.split())
    assert "losss" not in words and "each a regression loss (squared is the reference" in words
    assert "…" not in objectives.output
    assert_fits(objectives.output, 90)
    tasks = CliRunner().invoke(main, ["tasks", "--task", "preference-synthetic"])
    assert tasks.exit_code == 0 and "…" not in tasks.output
    assert_fits(tasks.output, 90)


def test_progress_counts_proposals_and_baselines_under_their_own_words():
    stream = io.StringIO()
    progress = Progress(generations=2, stream=stream)
    for name in ("dpo", "hinge"):
        progress.record(status="baseline", name=name, fitness=0.8, seconds=1.0, evals=1, proposal=False)
    for status in ("ok", "failed", "duplicate"):
        progress.record(status=status, name="idea", fitness=0.9 if status == "ok" else None, seconds=1.0, evals=1)
    line = stream.getvalue().splitlines()[-1]
    assert "3 proposals (1 failed, 1 duplicates) · 2 baselines" in line, line
    assert not re.search(r"\d+ candidates", line)
