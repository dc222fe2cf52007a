"""Self-Developing measured: does refining the factory on its own algorithms raise what it writes?

    python bench/self_develop.py [--task merging-synthetic] [--seeds 3] [--iterations 3] [--samples 64]
                                 [--workers 2] [--out bench-out/self_develop] [-o KEY=VALUE ...]
                                 [--factory-option KEY=VALUE ...] [--option=--NAME=VALUE ...]
                                 [--heldout-seeds 2] [--skip-heldout]

For each seed: one ``llm2 self-develop`` run with the offline default factory (refined with DPO each iteration)
and one control run (``--no-refine``: the same sampling, the same temperatures, the factory never trained). Runs
go one after the other (the machine's cores go to the evaluations); each is resumable, so a bench cut short
continues where it stopped when started again with the same --out.

Reported (and written to OUT/summary.json):
- per iteration and arm, over seeds: the share of valid algorithms, the mean / median / top-decile fitness of the
  factory's samples (mean ± std over seeds);
- the gain: mean fitness at the last iteration minus iteration 0, per seed; refined against control; whether the
  refined gain exceeds the spread across seeds (the larger std over seeds of iteration 0's and the last
  iteration's mean) and the control's gain;
- whether the valid share fell;
- the best algorithm of each refined run against the task's reference baseline off the run's setting
  (``llm2 heldout``: for merging-synthetic, experts never merged during the run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from llm2.files import read_json

from llm2.selfdev_files import RunFiles
from llm2.stats import mean_std as _mean_std

LLM2 = [sys.executable, "-m", "llm2.cli"]


def run_arm(out: Path, arm: str, seed: int, args) -> Path:
    run_dir = out / f"{arm}-seed{seed}"
    files = RunFiles(run_dir)
    if files.stats(args.iterations).is_file():
        print(f"{run_dir}: already done", flush=True)
        return run_dir
    command = [*LLM2, "self-develop", "--run-dir", str(run_dir)]
    if files.plan.is_file():
        command += ["--resume"]
    else:
        command += ["--task", args.task, "--iterations", str(args.iterations), "--samples", str(args.samples),
                    "--temperature", args.temperature, "--seed", str(seed), "--seeds", "1",
                    "--workers", str(args.workers), "--timeout", str(args.timeout)]
        command += [item for pair in args.task_option for item in ("-o", pair)]
        command += [item for pair in args.factory_option for item in ("--factory-option", pair)]
        command += [item for option in args.option for item in option.split("=", 1)]
        if arm == "control":
            command.append("--no-refine")
    started = time.perf_counter()
    print("$ " + " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)
    print(f"{run_dir}: {time.perf_counter() - started:.0f} s", flush=True)
    return run_dir


def iteration_stats(run_dir: Path, iterations: int) -> list[dict]:
    return [read_json(RunFiles(run_dir).stats(k)) for k in range(iterations + 1)]


def mean_std(values: list[float | None]) -> tuple[float, float]:
    """llm2.stats.mean_std over the values a run has (an iteration with no valid sample has no mean); nan if none."""
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return _mean_std(values)


def heldout(run_dir: Path, args) -> dict | None:
    report = run_dir / "heldout.json"
    if not report.is_file():
        subprocess.run([*LLM2, "heldout", str(run_dir), "--top", "1", "--seeds", str(args.heldout_seeds),
                        "--workers", str(args.workers), "--timeout", str(args.timeout), "--json", str(report)],
                       check=True)
    verdicts = json.loads(report.read_text())
    return verdicts[0] if verdicts else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="merging-synthetic")
    parser.add_argument("-o", "--task-option", action="append", default=[])
    parser.add_argument("--factory-option", action="append", default=[])
    parser.add_argument("--option", action="append", default=[], metavar="--NAME=VALUE",
                        help="any other option of llm2 self-develop, for both arms (repeatable)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--temperature", default="1.2:0.85")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--heldout-seeds", type=int, default=2)
    parser.add_argument("--skip-heldout", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench-out") / "self_develop")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs: dict[str, list[Path]] = {"refined": [], "control": []}
    for seed in range(args.seeds):
        for arm in ("refined", "control"):
            runs[arm].append(run_arm(args.out, arm, seed, args))
    run_seconds = time.perf_counter() - started
    stats = {arm: [iteration_stats(run, args.iterations) for run in paths] for arm, paths in runs.items()}
    last = args.iterations
    summary: dict = {"task": args.task, "task_options": args.task_option, "options": args.option, "seeds": args.seeds,
                     "iterations": args.iterations, "samples": args.samples, "temperature": args.temperature,
                     "factory_options": args.factory_option, "run_seconds": round(run_seconds, 1), "arms": {}}
    print(f"\n{args.task}: {args.seeds} seeds × (refined, control), {args.iterations} iterations of "
          f"{args.samples} samples; runs took {run_seconds / 60:.1f} min")
    print("| arm | iteration | valid share | mean fitness | median | top decile |")
    print("|---|---|---|---|---|---|")
    for arm, per_seed in stats.items():
        rows = []
        for k in range(last + 1):
            row = {key: mean_std([s[k][key] for s in per_seed])
                   for key in ("valid_share", "mean", "median", "top_decile")}
            rows.append(row)
            print(f"| {arm} | {k} | " + " | ".join(f"{row[key][0]:.4f} ± {row[key][1]:.4f}" for key in
                                                 ("valid_share", "mean", "median", "top_decile")) + " |")
        gains = [s[last]["mean"] - s[0]["mean"] for s in per_seed if s[last]["mean"] is not None
                 and s[0]["mean"] is not None]
        spread = max(mean_std([s[0]["mean"] for s in per_seed])[1], mean_std([s[last]["mean"] for s in per_seed])[1])
        summary["arms"][arm] = {"per_iteration": rows, "gains": gains, "gain": mean_std(gains),
                                "spread": spread,
                                "valid_share_fell": [s[last]["valid_share"] < s[0]["valid_share"] for s in per_seed]}
    refined, control = summary["arms"]["refined"], summary["arms"]["control"]
    verdict = {
        "refined_gain": refined["gain"], "control_gain": control["gain"], "spread_across_seeds": refined["spread"],
        "gain_exceeds_spread": refined["gain"][0] > refined["spread"],
        "gain_exceeds_control": refined["gain"][0] > control["gain"][0] + control["gain"][1],
        "valid_share_fell_in_any_refined_run": any(refined["valid_share_fell"]),
    }
    print(f"\nmean fitness, last iteration minus iteration 0: refined {refined['gain'][0]:+.4f} ± "
          f"{refined['gain'][1]:.4f} (per seed {', '.join(f'{g:+.4f}' for g in refined['gains'])}), control "
          f"{control['gain'][0]:+.4f} ± {control['gain'][1]:.4f}; spread of the mean across seeds "
          f"{refined['spread']:.4f}; gain exceeds the spread: {verdict['gain_exceeds_spread']}, exceeds the "
          f"control's: {verdict['gain_exceeds_control']}; valid share fell in a refined run: "
          f"{verdict['valid_share_fell_in_any_refined_run']}")
    if not args.skip_heldout:
        verdicts = []
        for run in runs["refined"]:
            v = heldout(run, args)
            if v is not None:
                verdicts.append({"run": run.name, "candidate": v["name"], "reference": v["reference"],
                                 "win_rate": v["win_rate"], "win_low": v["win_low"], "win_high": v["win_high"],
                                 "pairs": v["pairs"], "verdict": v["verdict"],
                                 "mean_diff": (v.get("test") or {}).get("mean_diff"),
                                 "p_value": (v.get("test") or {}).get("p_value")})
                print(f"held-out, {run.name}: {v['name']} vs {v['reference']}: win rate {v['win_rate']:.2f} "
                      f"[{v['win_low']:.2f}, {v['win_high']:.2f}] over {v['pairs']} pairs, "
                      f"mean diff {verdicts[-1]['mean_diff']}, p {verdicts[-1]['p_value']} -> {v['verdict']}")
        verdict["heldout"] = verdicts
    summary["verdict"] = verdict
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\nwritten {args.out / 'summary.json'} (total {summary['total_seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
