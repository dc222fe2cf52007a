"""The synthetic preference world's faithfulness, measured: every catalog loss at β = 0.05 (fitness, gold reward,
naturalness, KL), the reward–KL frontier of dpo and discopop over β, discopop's collapse at β = 0.01, a loss that
only pushes the rejected completion down, the spread of ρ at the first step, and seconds per evaluation.

    HF_HUB_OFFLINE=1 python bench/preference_world.py [--seeds 3] [--out bench-results/preference_world]

Training and scoring run in this process (the catalog is trusted code), one torch thread; the numbers are what the
sandboxed path gives too (tests/test_sandbox.py checks that they are identical).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from llm2.stats import mean_std
from llm2.tasks import load_task
from llm2.task_api.base import EvalSetting
from llm2.tasks.preference.catalog import OBJECTIVES
from llm2.tasks.preference.frontier import dominance
from llm2.tasks.preference.plots import FrontierPoint, FrontierSeries, plot_frontier
from llm2.tasks.preference_synthetic.model import completion_logps

FRONTIER_BETAS = (0.025, 0.05, 0.1, 0.2, 0.5)


def reject_only(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    return -F.logsigmoid(-beta * (policy_rejected_logps - reference_rejected_logps))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-results/preference_world"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    task = load_task("preference-synthetic")
    base = task.parse_settings({"fitness": "judge"})  # measured on the judge: no dpo frontier traced
    losses = {**{name: o.fn for name, o in OBJECTIVES.items()}, "reject_only": reject_only}
    timings: list[float] = []

    def run(name: str, beta: float, seed: int) -> dict:
        settings = task.parse_settings({"beta": str(beta)}, base)
        task.prepare(settings)
        data = task.training_data(settings)
        started = time.perf_counter()
        output = task.train(losses[name], data, EvalSetting(settings, seed))
        metrics = task.scorer(settings).score(output)
        timings.append(time.perf_counter() - started)
        return {"fitness": metrics.fitness, **metrics.values}

    def summary(name: str, beta: float) -> dict:
        rows = [run(name, beta, seed) for seed in range(args.seeds)]
        # llm2.stats.mean_std: the sample std like statistics.stdev, but 0 for --seeds 1 instead of an error
        return {key: mean_std([r[key] for r in rows]) for key in ("fitness", "gold_reward", "naturalness", "kl")}

    reference = task.scorer(base).reference_metrics()
    table = {name: summary(name, 0.05) for name in losses}
    frontier = {name: {beta: (table[name] if beta == 0.05 else summary(name, beta)) for beta in FRONTIER_BETAS}
                for name in ("dpo", "discopop")}
    collapse = {name: summary(name, 0.01) for name in ("dpo", "discopop")}
    series = {name: FrontierSeries(name, tuple(FrontierPoint(b, p["gold_reward"][0], p["kl"][0],
                                                             p["gold_reward"][1], p["kl"][1])
                                               for b, p in points.items()))
              for name, points in frontier.items()}
    plot_frontier(list(series.values()), args.out / "frontier.png", FrontierPoint(float("nan"),
                  reference.values["gold_reward"], 0.0), "Gold reward against KL over β = 0.025 … 0.5")
    discopop_against_dpo = dominance(series["discopop"], series["dpo"])
    results = {"reference": {"fitness": reference.fitness, **reference.values}, "beta_0.05": table,
               "frontier": {n: {str(b): v for b, v in p.items()} for n, p in frontier.items()},
               "beta_0.01": collapse, "discopop_vs_dpo_frontier": {
                   "verdict": discopop_against_dpo.verdict, "margins": discopop_against_dpo.margins},
               "rho_spread_at_step_0": rho_spread(task, base), "seconds_per_evaluation": {
                   "median": statistics.median(timings), "min": min(timings), "n": len(timings)}}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(markdown(results))


def rho_spread(task, settings) -> dict:
    """std of ρ over 640 pairs at step 0: the policy (= the reference, in train mode: dropout on) against the
    reference's own log-probs, at the reference's supervised dropout and at the training dropout."""
    data = task.training_data(settings)
    pairs = data.pairs
    spreads = {}
    for label, dropout in (("reference dropout 0.1", None), (f"training dropout {task.train_config.dropout}",
                                                             task.train_config.dropout)):
        torch.manual_seed(0)
        policy = data.reference_model(dropout).train()
        with torch.no_grad():
            index = torch.arange(640)
            logps = completion_logps(policy, torch.cat([pairs.chosen[index], pairs.rejected[index]]),
                                     data.config.prompt_length).sum(dim=1)
            chosen, rejected = logps.split(640)
            rho = (chosen - rejected) - (pairs.reference_chosen_logps[index] - pairs.reference_rejected_logps[index])
        spreads[label] = rho.std().item()
    return spreads


def markdown(results: dict) -> str:
    def cell(pair):
        return f"{pair[0]:.3f} ± {pair[1]:.3f}"

    lines = ["| loss | fitness (judge) | gold reward | naturalness | KL |", "|---|---|---|---|---|"]
    for name, row in sorted(results["beta_0.05"].items(), key=lambda item: -item[1]["fitness"][0]):
        lines.append(f"| {name} | {cell(row['fitness'])} | {cell(row['gold_reward'])} | "
                     f"{cell(row['naturalness'])} | {cell(row['kl'])} |")
    lines += ["", "| loss | β | gold reward | KL |", "|---|---|---|---|"]
    for name, points in results["frontier"].items():
        for beta, row in points.items():
            lines.append(f"| {name} | {beta} | {cell(row['gold_reward'])} | {cell(row['kl'])} |")
    for name, row in results["beta_0.01"].items():
        lines.append(f"| {name} | 0.01 | {cell(row['gold_reward'])} | {cell(row['kl'])} |")
    lines += ["", f"reference: {results['reference']}", f"discopop vs dpo: {results['discopop_vs_dpo_frontier']}",
              f"spread of ρ at step 0: {results['rho_spread_at_step_0']}",
              f"seconds per evaluation: {results['seconds_per_evaluation']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
