"""What the report and `llm2 plot` say matches what they draw: the frontier sentence is read off the line the figure
draws, β labels do not cover each other, the HTML leaderboard has the terminal's columns, and `plot results` draws
with the task its file records."""

from __future__ import annotations

import json
import time
from itertools import combinations
from pathlib import Path

from click.testing import CliRunner

from llm2.archive import Archive
from llm2.cli import main
from llm2.report.html import leaderboard_section
from llm2.tasks import load_task
from llm2.task_api.card import TaskCard
from llm2.tasks.preference.figures import frontier_sentence
from llm2.tasks.preference.frontier import dominance
from llm2.tasks.preference.plots import FrontierPoint, FrontierSeries, frontier_figure
from testkit import make_run

# dpo's KL is not monotone in β here (β 0.05 drifted above β 0.025, as noise at two seeds can make it)
NOISY_DPO = FrontierSeries("dpo", (FrontierPoint(0.025, 0.9, 6.0), FrontierPoint(0.05, 0.92, 8.0),
                                   FrontierPoint(0.1, 0.7, 4.0), FrontierPoint(0.2, 0.5, 2.0)))
CANDIDATE = FrontierSeries("mine", (FrontierPoint(0.1, 0.78, 5.0), FrontierPoint(0.2, 0.95, 1.0)))


def drawn_line(fig, name: str) -> list[tuple[float, float]]:
    (container,) = [c for c in fig.axes[0].containers if c.get_label() == name]
    return [tuple(xy) for xy in container.lines[0].get_xydata()]


def above_drawn_line(line: list[tuple[float, float]], kl: float, reward: float) -> bool | None:
    """Whether a point is on or above every segment of the drawn line that passes its KL (None: none does)."""
    heights = [y0 + (kl - x0) / (x1 - x0) * (y1 - y0) for (x0, y0), (x1, y1) in zip(line, line[1:])
               if min(x0, x1) <= kl <= max(x0, x1) and x1 != x0]
    return None if not heights else all(reward >= h for h in heights)


def test_the_frontier_sentence_says_what_the_drawn_reference_line_shows():
    fig = frontier_figure([NOISY_DPO, CANDIDATE])
    line = drawn_line(fig, "dpo")
    seen = [above_drawn_line(line, p.kl, p.reward) for p in CANDIDATE.points]
    compared = [s for s in seen if s is not None]
    measured = dominance(CANDIDATE, NOISY_DPO)
    assert (measured.compared, measured.above) == (len(compared), sum(compared)) == (1, 0)
    assert frontier_sentence(CANDIDATE, NOISY_DPO) == \
        "mine: on or above the frontier at 0 of 1 points of dpo (1 more outside dpo's KL range)"


def test_beta_labels_of_the_frontier_do_not_overlap():
    # five objectives whose points crowd together, as at low KL in a real run
    crowded = [FrontierSeries(name, tuple(FrontierPoint(beta, 0.8 + 0.002 * k + 0.001 * j, 2.0 + 0.02 * k + 0.01 * j)
                                          for j, beta in enumerate((0.1, 0.2, 0.5))))
               for k, name in enumerate(("dpo", "a", "b", "c", "d"))]
    fig = frontier_figure(crowded)
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    boxes = [t.get_window_extent(renderer) for t in fig.axes[0].texts if t.get_text().startswith("β=")]
    assert len(boxes) >= 8  # most points keep their label
    overlapping = [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)]
    assert not overlapping


def test_the_html_leaderboard_shows_every_number_the_terminal_one_does(tmp_path):
    task = load_task("preference-synthetic")
    card = TaskCard.of(task)
    with Archive.create(tmp_path / "run", make_run(started_at=time.time()), card.to_dict()) as archive:
        c = archive.add_candidate(generation=1, proposer="symbolic", thought="", name="mine", code="x = 1\n")
        archive.finish_candidate(c.id, status="ok", stage="done", error=None, fitness=0.91, fitness_std=0.01,
                                 metrics={"gold_reward": 0.8765, "naturalness": 0.654, "kl": 3.21}, seconds=1.0,
                                 feedback=None, sandbox=())
        candidates = archive.candidates()
    page = leaderboard_section(candidates, card)
    head, _, row = page.partition("<summary")
    row = row.partition("</summary>")[0]
    for column in task.metric_columns:
        assert f">{column.label}</span>" in head
    for text in ("0.8765", "0.654", "3.210"):
        assert f">{text}</span>" in row
    assert ">0.9100 ± 0.0100</span>" in row
    one_seed = leaderboard_section(candidates, card, seeds=1)  # one seed: no spread to show, as in the terminal
    assert "±" not in one_seed and "fitness (1 seed)" in one_seed and ">0.9100</span>" in one_seed


def eval_json(path: Path, task: str, spec: str | None = None) -> Path:
    payload = {"task": task, "fitness": "accuracy", "references": [],
               "results": [{"objective": "cross_entropy", "setting": {"label_noise": 0.2, "text": "noise 0.2"},
                            "fitness_mean": 0.8, "fitness_std": 0.01, "metrics": {}, "seeds": 1,
                            "seconds_per_eval": 1.0, "status": "ok", "error": None}]}
    if spec:
        payload["task_spec"] = spec
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def test_plot_results_draws_with_the_task_the_file_records(tmp_path):
    out = tmp_path / "out.png"
    runner = CliRunner()
    recorded = runner.invoke(main, ["plot", "results", str(eval_json(tmp_path / "c.json", "classification")),
                                    "--out", str(out)])
    assert recorded.exit_code == 2 and "task classification draws no picture of evaluation results" in recorded.output
    outside = eval_json(tmp_path / "r.json", "robust-regression", "tests/example_task.py:RobustRegression")
    by_spec = runner.invoke(main, ["plot", "results", str(outside), "--out", str(out)])
    assert by_spec.exit_code == 2 and "task robust-regression draws no picture" in by_spec.output
    mismatch = runner.invoke(main, ["plot", "results", str(tmp_path / "c.json"), "--task", "preference-synthetic",
                                    "--out", str(out)])
    assert mismatch.exit_code == 2 and "holds results of task classification, not preference-synthetic" in \
        mismatch.output
    assert not out.exists() and "Traceback" not in recorded.output + by_spec.output + mismatch.output
