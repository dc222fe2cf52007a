"""The preference-synthetic fitnesses side by side: judge (today's default), frontier-gap and judge-peak, on catalog
losses and on dpo's own variants, with the core-seconds each evaluation costs, and how well each fitness orders the
losses as the held-out frontier verdict does.

    python bench/fitness.py [--losses dpo,hinge,...] [--seeds 0,1] [--beta 0.05] [--world-seed 0]
                            [--label-noise 0.2] [--verdicts bench-results/catalog_frontier/heldout.json]
                            [--out bench-results/fitness]

Training and scoring run in this process (trusted catalog code, as the task's tests do). judge and frontier-gap
score the same trained weights (the gap only reads dpo's frontier at the weights' KL); judge-peak trains one run
three times as long and scores its checkpoints. dpo's frontier is traced first (or read from the cache) and its
cost printed apart: it is paid once per setting. ``--verdicts`` (repeatable): an ``llm2 heldout`` JSON
(bench/catalog_frontier.py writes one) or a plain {name: mean gap} file; each loss found there is paired with its
held-out mean gap to dpo's frontier, and the Spearman rank correlation of each fitness with that gap is printed.
Writes ``fitness.json`` to --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from scipy.stats import spearmanr

from llm2.task_api.base import EvalSetting
from llm2.tasks.preference.catalog import OBJECTIVES
from llm2.tasks.preference_synthetic.config import PreferenceSettings
from llm2.tasks.preference_synthetic.task import PreferenceSyntheticTask

FITNESSES = ("judge", "frontier-gap", "judge-peak")
LOSSES = "dpo,hinge,ipo,kto_pair,discopop,aql,aqfl,padll,dbaql,pfl,bco_pair,cell"
# dpo itself, moved along its own frontier: every honest fitness must score these as dpo
VARIANTS = {"dpo budget 1.25": ("dpo", {"budget": 1.25}), "dpo budget 1.5": ("dpo", {"budget": 1.5}),
            "dpo beta x0.5": ("dpo", {"beta": 0.5}), "dpo beta x2": ("dpo", {"beta": 2.0})}


def at_beta(fn, multiple: float):
    """The loss at ``multiple`` times the setting's beta (a candidate trains at the setting's own)."""
    def loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):
        return fn(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta * multiple)
    return loss


def evaluate(task: PreferenceSyntheticTask, fn, settings: PreferenceSettings, seed: int, budget: float) -> dict:
    """The three fitnesses of one loss at one seed, and the core-seconds each took."""
    row, seconds = {}, {}
    data = task.training_data(settings)
    start = time.process_time()
    output = task.train(fn, data, EvalSetting(settings, seed, budget))
    trained = time.process_time()
    judge = task.scorer(settings).score(output)
    seconds["judge"] = time.process_time() - start
    gap_settings = replace(settings, fitness="frontier-gap")
    before_gap = time.process_time()
    gap = task.scorer(gap_settings).score(output)
    seconds["frontier-gap"] = trained - start + time.process_time() - before_gap
    peak_settings = replace(settings, fitness="judge-peak")
    start = time.process_time()
    peak = task.scorer(peak_settings).score(task.train(fn, task.training_data(peak_settings),
                                                       EvalSetting(peak_settings, seed, budget)))
    seconds["judge-peak"] = time.process_time() - start
    row.update(judge=judge.fitness, kl=judge.values["kl"], gap=gap.fitness, frontier=gap.values["frontier_judge"],
               frontier_noise=gap.values["frontier_noise"], peak=peak.fitness, peak_share=peak.values["peak_share"],
               peak_kl=peak.values["kl"], seconds=seconds)
    return row


def held_out_gaps(paths: list[Path]) -> dict[str, float]:
    """name -> the held-out frontier verdict's mean gap, from ``llm2 heldout --json`` files (a list of verdicts) or
    plain {name: gap} files."""
    gaps = {}
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            gaps.update({k: float(v) for k, v in data.items() if not k.startswith("_")})
            continue
        for verdict in data:
            evidence = ((verdict.get("frontier") or [{}])[0]).get("evidence") or {}
            if "mean_diff" in evidence:
                gaps[verdict["name"].removeprefix("catalog_")] = evidence["mean_diff"]
    return gaps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--losses", default=LOSSES)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--beta", type=float, default=0.05)
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--label-noise", type=float, default=0.2)
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument("--verdicts", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path("bench-results/fitness"))
    args = parser.parse_args()
    task = PreferenceSyntheticTask()
    settings = PreferenceSettings(beta=args.beta, world_seed=args.world_seed, label_noise=args.label_noise)
    seeds = [int(s) for s in args.seeds.split(",")]
    task.prepare(settings)
    start = time.process_time()
    task.prepare(replace(settings, fitness="frontier-gap"))  # dpo's frontier: traced once, or read from the cache
    trace_seconds = time.process_time() - start
    print(f"dpo's frontier at {task.setting_text(settings)}: {trace_seconds:.1f} core-seconds (0 when cached)")

    items = {name: (name, {}) for name in args.losses.split(",") if name}
    if not args.no_variants:
        items.update(VARIANTS)
    results = {}
    for label, (loss, change) in items.items():
        fn = at_beta(OBJECTIVES[loss], change["beta"]) if "beta" in change else OBJECTIVES[loss]
        rows = [evaluate(task, fn, settings, seed, change.get("budget", 1.0)) for seed in seeds]
        results[label] = {key: statistics.fmean(r[key] for r in rows)
                          for key in rows[0] if key != "seconds"}
        results[label]["seconds"] = {f: statistics.fmean(r["seconds"][f] for r in rows) for f in FITNESSES}
        r = results[label]
        print(f"{label:18s} judge {r['judge']:.3f} @ KL {r['kl']:5.2f} | gap {r['gap']:+.4f} (frontier "
              f"{r['frontier']:.3f} ± {r['frontier_noise']:.3f}) | peak {r['peak']:.3f} at share "
              f"{r['peak_share']:.1f}, KL {r['peak_kl']:5.2f} | core-s " +
              " ".join(f"{f} {r['seconds'][f]:.1f}" for f in FITNESSES), flush=True)

    per_eval = {f: statistics.fmean(r["seconds"][f] for r in results.values()) for f in FITNESSES}
    print("mean core-seconds per evaluation: " + ", ".join(f"{f} {s:.1f} ({s / per_eval['judge']:.2f}x judge)"
                                                            for f, s in per_eval.items()))
    gaps = held_out_gaps(args.verdicts)
    shared = [name for name in results if name in gaps]
    agreement = {}
    if len(shared) >= 3:
        for fitness, key in (("judge", "judge"), ("frontier-gap", "gap"), ("judge-peak", "peak")):
            rho = spearmanr([results[n][key] for n in shared], [gaps[n] for n in shared]).statistic
            agreement[fitness] = rho
        print(f"Spearman with the held-out frontier gap over {len(shared)} losses ({', '.join(shared)}): " +
              ", ".join(f"{f} {rho:+.2f}" for f, rho in agreement.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fitness.json").write_text(json.dumps(
        {"setting": task.setting_text(settings), "seeds": seeds, "trace_core_seconds": trace_seconds,
         "results": results, "per_eval_core_seconds": per_eval, "held_out_gaps": gaps, "agreement": agreement},
        indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
