"""The preference-synthetic fitnesses side by side: judge (today's default), frontier-gap and judge-peak, on catalog
losses and on dpo's own variants, with the core-seconds each evaluation costs, and how well each fitness orders the
losses as the held-out frontier verdict does.

    python bench/fitness.py [--losses dpo,hinge,...] [--seeds 0,1] [--beta 0.05] [--world-seed 0]
                            [--label-noise 0.2] [--verdicts bench-results/catalog_frontier/heldout.json]
                            [--frontier-budgets 0.5,...] [--results FITNESS_JSON] [--out bench-results/fitness]

Training and scoring run in this process (trusted catalog code, as the task's tests do). judge and frontier-gap
score the same trained weights (the gap only reads dpo's frontier at the weights' KL); judge-peak trains one run
three times as long and scores its checkpoints. dpo's frontier is traced first (or read from the cache) and its
cost printed apart: it is paid once per setting. ``--verdicts`` (repeatable): an ``llm2 heldout`` JSON
(bench/catalog_frontier.py writes one) or a plain {name: mean gap} file; each loss found there is paired with its
held-out mean gap to dpo's frontier (``bench/heldout_frontier.py`` writes one), and each fitness's agreement with it
is printed (``agree``). ``--results`` re-reads a fitness.json instead of measuring.
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
from llm2.tasks.preference_synthetic.config import PreferenceSettings, TrainConfig
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


def agree(results: dict, gaps: dict, shared: list[str], key: str) -> dict:
    """How well one fitness agrees with the held-out frontier verdict: the Spearman rank correlation of the fitness
    with the held-out mean gap, and on how many losses the fitness puts the loss on the same side of dpo (its
    fitness minus dpo's) as the held-out verdict puts it of dpo's frontier (the mean gap's sign)."""
    test = spearmanr([results[n][key] for n in shared], [gaps[n] for n in shared])
    same = ([(results[n][key] - results["dpo"][key] > 0) == (gaps[n] > 0) for n in shared]
            if "dpo" in results else [])
    return {"spearman": float(test.statistic), "p": float(test.pvalue), "same_side": sum(same),
            "losses": len(same)}


def measure(args: argparse.Namespace) -> dict:
    """Every loss's three fitnesses and their core-seconds, printed as they come."""
    config = TrainConfig()
    if args.frontier_budgets:
        config = replace(config, frontier_budgets=tuple(float(b) for b in args.frontier_budgets.split(",")))
    task = PreferenceSyntheticTask(train_config=config)
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
    return {"setting": task.setting_text(settings), "seeds": seeds, "trace_core_seconds": trace_seconds,
            "results": results, "per_eval_core_seconds": per_eval}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--losses", default=LOSSES)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--beta", type=float, default=0.05)
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--label-noise", type=float, default=0.2)
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument("--frontier-budgets", default="",
                        help="dpo's frontier traced at these budgets (default: the task's), e.g. the tests' smaller")
    parser.add_argument("--verdicts", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path("bench-results/fitness"))
    parser.add_argument("--results", type=Path, help="a fitness.json written before: no measuring, only the "
                                                      "agreement with --verdicts")
    args = parser.parse_args()
    payload = json.loads(args.results.read_text(encoding="utf-8")) if args.results else measure(args)
    results = payload["results"]
    gaps = held_out_gaps(args.verdicts)
    shared = [name for name in results if name in gaps]
    agreement = {}
    if len(shared) >= 3:
        for fitness, key in (("judge", "judge"), ("frontier-gap", "gap"), ("judge-peak", "peak")):
            agreement[fitness] = agree(results, gaps, shared, key)
        print(f"Agreement with the held-out frontier verdict over {len(shared)} losses ({', '.join(shared)}): " +
              "; ".join(f"{f}: Spearman {a['spearman']:+.2f} (p {a['p']:.2g}), the same side of dpo as the held-out "
                        f"gap for {a['same_side']} of {a['losses']}" for f, a in agreement.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fitness.json").write_text(json.dumps({**payload, "held_out_gaps": gaps, "agreement": agreement},
                                                      indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
