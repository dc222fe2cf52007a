"""The report's figures and the preference task's (loss shapes, reward–KL frontier), and ``llm2 plot``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from llm2.archive import EvaluationRecord
from llm2.cli import main
from llm2.report.plots import CandidatePoint, discovery_curve_figure
from llm2.sandbox.confined_call import call_confined
from llm2.sandbox.environment import stripped_environment
from llm2.tasks.preference.catalog import OBJECTIVES
from llm2.tasks.preference.frontier import (dominance, frontier_from_evaluate_json, frontier_from_evaluations,
                                            has_frontier, reward_at)
from llm2.tasks.preference.plots import (FrontierPoint, FrontierSeries, frontier_figure, loss_shapes_figure,
                                         shape_limits)
from llm2.tasks.preference.shapes import WIDE, ZOOM, loss_shape, shapes_of


def shapes_from_code(items, beta, points=401, timeout_s=60.0):
    """Shapes computed as the report computes them: in a confined process, after the static checks."""
    def confined(entry, chosen, payload):
        return call_confined("preference-synthetic", entry, chosen, payload, timeout_s)

    return shapes_of(confined, items, beta, points=points)

torch.set_num_threads(1)


def axis_texts(fig) -> set[str]:
    return {t for ax in fig.axes for t in (ax.get_xlabel(), ax.get_ylabel())}


def legend_texts(fig) -> list[str]:
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return [t.get_text() for legend in legends for t in legend.get_texts()]


# ---- shapes ----------------------------------------------------------------------------------------------------

def test_dpo_shape_matches_its_formula_and_derivative():
    shape = loss_shape("dpo", OBJECTIVES["dpo"], beta=0.05)
    assert shape.error is None and not shape.batch_dependent
    for panel, (low, high) in zip(shape.panels, (WIDE, ZOOM)):
        x = np.array(panel.x)
        assert x[0] == low and x[-1] == high
        sigmoid = 1 / (1 + np.exp(-x))
        np.testing.assert_allclose(panel.f, -np.log(sigmoid), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(panel.df, -(1 - sigmoid), rtol=1e-6, atol=1e-9)


def test_discopop_shape_has_the_papers_local_extrema_near_zero():
    # DESIGN.md §3: DiscoPOP is non-convex, a local minimum near x = −0.12 and a maximum near x = 0.07.
    zoom = loss_shape("discopop", OBJECTIVES["discopop"], beta=0.05).panels[1]
    x, f = np.array(zoom.x), np.array(zoom.f)
    interior = np.arange(1, len(x) - 1)
    minima = x[interior[(f[interior] < f[interior - 1]) & (f[interior] < f[interior + 1])]]
    maxima = x[interior[(f[interior] > f[interior - 1]) & (f[interior] > f[interior + 1])]]
    assert len(minima) == 1 and abs(minima[0] + 0.12) < 0.03
    assert len(maxima) == 1 and abs(maxima[0] - 0.07) < 0.03


def test_batch_statistics_are_detected_and_the_per_pair_derivative_is_exact():
    assert loss_shape("aqfl", OBJECTIVES["aqfl"], beta=0.05).batch_dependent

    def centred(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
        x = beta * (policy_chosen_logps - policy_rejected_logps)
        return (x - x.mean()) ** 2

    panel = loss_shape("centred", centred, beta=0.5, ranges=[(-1.0, 2.0)], points=31).panels[0]
    x = np.array(panel.x)
    # d/dx_i (x_i − mean)² = 2 (x_i − mean)(1 − 1/n): the pair's own effect on the batch mean included.
    np.testing.assert_allclose(panel.df, 2 * (x - x.mean()) * (1 - 1 / len(x)), rtol=1e-6, atol=1e-9)


def test_a_loss_breaking_the_contract_gives_a_shape_with_its_reason():
    def reduced(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
        return (policy_chosen_logps - policy_rejected_logps).mean()

    shape = loss_shape("reduced", reduced, beta=0.05)
    assert shape.panels == () and "per-pair shape" in shape.error


def test_candidate_code_runs_in_a_child_process_with_a_time_limit():
    printing = ("def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,"
                " reference_rejected_logps, beta):\n"
                "    print('noise on stdout')\n"
                "    return -F.logsigmoid(beta * (policy_chosen_logps - policy_rejected_logps))\n")
    shapes = shapes_from_code([("dpo", OBJECTIVES["dpo"].code), ("printing", printing),
                               ("broken", "def loss(:\n")], beta=0.05, points=21)
    assert [s.name for s in shapes] == ["dpo", "printing", "broken"]
    assert shapes[0].error is None and shapes[1].error is None  # the print did not corrupt the answer
    assert shapes[0].panels[0].f == pytest.approx(shapes[1].panels[0].f)
    assert "syntax error" in shapes[2].error

    looping = ("def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,"
               " reference_rejected_logps, beta):\n    while True:\n        pass\n")
    (timed_out,) = shapes_from_code([("looping", looping)], beta=0.05, points=5, timeout_s=3)
    assert timed_out.panels == () and "CPU-time limit of 4 s" in timed_out.error


def test_candidate_code_for_shapes_is_checked_and_confined(tmp_path, monkeypatch):
    outside = tmp_path / "escaped.txt"
    code = (f"open({str(outside)!r}, 'w').write('x')\n"
            "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,"
            " reference_rejected_logps, beta):\n"
            "    return -F.logsigmoid(beta * (policy_chosen_logps - policy_rejected_logps))\n")
    (shape,) = shapes_from_code([("writer", code)], beta=0.05, points=5)
    assert "static check" in shape.error and "'open'" in shape.error and not outside.exists()
    # the confined process gets no secret: an error message can never carry the proposer's key into a report
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-leak")
    assert "OPENAI_API_KEY" not in stripped_environment() and stripped_environment()["OMP_NUM_THREADS"] == "1"


# ---- figures ---------------------------------------------------------------------------------------------------

def test_shape_limits_keep_dpo_whole_and_clip_curves_of_another_scale():
    x = np.linspace(-10, 10, 201)
    dpo = np.log1p(np.exp(-x))
    ipo = 400 * (x - 0.5) ** 2
    near = dpo + 0.3
    (low, high), clipped = shape_limits({"dpo": dpo, "ipo": ipo, "near": near}, dpo)
    assert low <= dpo.min() and high >= near.max()
    assert high < 20 and clipped == ["ipo"]


def test_loss_shape_figure_labels_axes_and_always_names_dpo():
    shapes = [loss_shape(n, OBJECTIVES[n], 0.05) for n in ("dpo", "discopop", "ipo")]
    fig = loss_shapes_figure(shapes, beta=0.05)
    assert {"x = β·ρ", "f(x)", "f′(x) = df/dx"} <= axis_texts(fig)
    assert {"dpo", "discopop", "ipo"} <= set(legend_texts(fig))
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "off scale (clipped): ipo" in titles


def test_discovery_curve_marks_failures_by_reason_and_draws_dpo():
    points = [CandidatePoint("a", 1, 0.5, "ok", "done"), CandidatePoint("b", 1, None, "invalid", "contract"),
              CandidatePoint("c", 2, 0.8, "ok", "done"), CandidatePoint("d", 2, None, "timeout", "train"),
              CandidatePoint("e", 2, None, "pending", None)]
    fig = discovery_curve_figure(points, {"dpo": 0.7, "hinge": 0.6}, "dpo", "judge score")
    top, bottom = fig.axes
    assert "fitness (judge score)" in top.get_ylabel() and bottom.get_xlabel() == "generation"
    legend = legend_texts(fig)
    assert any(t.startswith("dpo (baseline)") for t in legend) and "best so far" in legend
    assert [t.get_text() for t in bottom.get_yticklabels()] == ["invalid at contract (1)", "timeout at train (1)"]
    best_line = [line for line in top.get_lines() if line.get_label() == "best so far"][0]
    assert list(best_line.get_ydata()) == [0.5, 0.8, 0.8]
    assert list(best_line.get_xdata()) == [0.5, 1.5, 2.5]

    without_dpo = discovery_curve_figure(points[:1], {}, "dpo", "judge score")
    assert "dpo: not measured in this run" in legend_texts(without_dpo)


def test_frontier_figure_axes_and_a_mathtext_name_is_shown_literally():
    series = [FrontierSeries("dpo", (FrontierPoint(0.05, 0.9, 6.0), FrontierPoint(0.5, 0.6, 1.0))),
              FrontierSeries("a$\\frac$b", (FrontierPoint(0.05, 0.92, 5.0),))]
    fig = frontier_figure(series, FrontierPoint(math.nan, 0.4, 0.0))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "KL(π‖π_ref) in nats" and ax.get_ylabel() == "mean gold reward"
    assert "reference policy π_ref" in legend_texts(fig)
    fig.savefig(Path("/dev/null"), format="png")  # bad mathtext in a name would raise here


# ---- frontier data ---------------------------------------------------------------------------------------------

def evaluation(name, beta, fitness, kl, seed=0, world_seed=0, suite="heldout", status="ok"):
    return EvaluationRecord(id=0, candidate_name=name, code_hash="h", suite=suite,
                            setting={"beta": beta, "seed": seed, "world_seed": world_seed, "label_noise": 0.2},
                            fitness=fitness, seconds=1.0, status=status, error=None,
                            metrics={} if kl is None else {"kl": kl})


def test_frontier_from_evaluations_uses_one_world_and_averages_seeds():
    records = [evaluation("dpo", 0.05, 0.9, 6.0, seed=0), evaluation("dpo", 0.05, 0.8, 5.0, seed=1),
               evaluation("dpo", 0.5, 0.6, 1.0), evaluation("dpo", 0.05, 0.1, 9.0, world_seed=1),
               evaluation("dpo", 0.01, None, None, status="failed")]
    (series,) = frontier_from_evaluations(records)
    assert [p.beta for p in series.points] == [0.05, 0.5]
    assert series.points[0].reward == pytest.approx(0.85) and series.points[0].kl == pytest.approx(5.5)
    assert series.points[0].reward_std == pytest.approx(math.sqrt(0.005))
    assert has_frontier([series])
    assert not has_frontier(frontier_from_evaluations(records[:2]))


def write_eval_json(path: Path) -> Path:
    def row(objective, beta, reward, kl, status="ok", error=None):
        metrics = {"kl": {"mean": kl, "std": 0.1 if kl is not None else None}}
        return {"objective": objective, "setting": {"beta": beta, "world_seed": 0, "text": f"β = {beta}"},
                "fitness_mean": reward, "fitness_std": 0.01, "metrics": metrics, "seeds": 2,
                "seconds_per_eval": 1.0, "status": status, "error": error}

    results = [row(o, b, r, k) for o, b, r, k in [("dpo", 0.05, 0.9, 6.0), ("dpo", 0.5, 0.6, 1.0),
                                                   ("discopop", 0.05, 0.7, 3.8), ("discopop", 0.5, 0.65, 1.2)]]
    results.append(row("discopop", 0.01, None, None, "failed", "the loss diverged"))
    path.write_text(json.dumps({"task": "preference-synthetic", "results": results}), encoding="utf-8")
    return path


def test_frontier_from_evaluate_json(tmp_path):
    series, notes = frontier_from_evaluate_json(write_eval_json(tmp_path / "eval.json"))
    assert {s.name: len(s.points) for s in series} == {"dpo": 2, "discopop": 2}
    assert notes == ["discopop at β=0.01: the loss diverged; skipped"]
    (tmp_path / "bad.json").write_text("{\"rows\": []}")
    with pytest.raises(ValueError, match="no list under \"results\""):
        frontier_from_evaluate_json(tmp_path / "bad.json")


def test_dominance_compares_reward_at_matched_kl():
    dpo = FrontierSeries("dpo", (FrontierPoint(0.5, 0.6, 1.0), FrontierPoint(0.05, 0.9, 6.0)))
    assert reward_at(dpo, 3.5) == pytest.approx(0.75) and reward_at(dpo, 7.0) is None
    above = FrontierSeries("a", (FrontierPoint(0.1, 0.8, 3.5), FrontierPoint(0.2, 0.7, 2.0)))
    below = FrontierSeries("b", (FrontierPoint(0.1, 0.7, 3.5), FrontierPoint(0.01, 0.95, 20.0)))
    assert dominance(above, dpo).verdict == "on or above the frontier at all 2 points"
    result = dominance(below, dpo)
    assert (result.compared, result.above) == (1, 0) and result.margins == (pytest.approx(-0.05),)


# ---- commands --------------------------------------------------------------------------------------------------

def png_size(path: Path) -> tuple[int, int]:
    image = matplotlib.image.imread(path)
    return image.shape[1], image.shape[0]


def test_plot_objectives_command_with_catalog_and_file_objectives(tmp_path):
    mine = tmp_path / "mine.py"
    mine.write_text("def sharp(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,"
                    " reference_rejected_logps, beta):\n"
                    "    \"\"\"A steeper logistic.\"\"\"\n"
                    "    x = beta * ((policy_chosen_logps - policy_rejected_logps)"
                    " - (reference_chosen_logps - reference_rejected_logps))\n"
                    "    return -F.logsigmoid(2.0 * x)\n")
    out = tmp_path / "shapes.png"
    result = CliRunner().invoke(main, ["plot", "objectives", "discopop", f"{mine}:sharp", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "(dpo, discopop, sharp; dpo is the reference)" in result.output
    width, height = png_size(out)
    assert width > 800 and height > 500


def test_plot_objectives_command_rejects_unknown_names_clearly(tmp_path):
    result = CliRunner().invoke(main, ["plot", "objectives", "nope", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert "'nope' is neither one of the task's objectives" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.png").exists()
    other = CliRunner().invoke(main, ["plot", "objectives", "absolute", "--task", "tests/example_task.py:RobustRegression",
                                      "--out", str(tmp_path / "x.png")])
    assert other.exit_code == 2 and "draws no picture of its objectives" in other.output


def test_plot_results_command(tmp_path):
    out = tmp_path / "frontier.png"
    result = CliRunner().invoke(main, ["plot", "results", str(write_eval_json(tmp_path / "e.json")), "--out",
                                       str(out)])
    assert result.exit_code == 0, result.output
    assert "discopop at β=0.01: the loss diverged" in result.output
    assert png_size(out)[0] > 600
    missing = CliRunner().invoke(main, ["plot", "results", str(tmp_path / "none.json"), "--out", str(out)])
    assert missing.exit_code == 2 and "file not found" in missing.output
