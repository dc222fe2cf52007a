"""What the spawned runtime costs per candidate on the CPU, against the fork runtime, on the preference-hf task.

    python bench/spawn_runtime.py [--candidates 5] [--steps 8] [--json out.json]

A CUDA task runs each candidate in a freshly spawned confined process (CUDA does not survive a fork): a new
interpreter imports torch, transformers and TRL, loads the task's training data and warms up (one step of the
reference baseline) before it confines itself. A CPU task forks the candidate's process from a warm worker that has
done all of that once. Both are measured here on the CPU with the same job, the DPO baseline on the tiny random
Llama of ``llm2.tasks.preference_hf.tiny`` (weights back as a file in both, so only the start differs), one
worker, sequential jobs, after one job that warms the worker up. Each candidate's seconds are the executor's wall
time for the job: start, training, the probe, the final scoring. Also measured: the imports alone (torch,
transformers, TRL's DPOTrainer) in a fresh interpreter, the part of the overhead no warm worker can save.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# timed inside the interpreter (its exit, which a candidate's process skips with os._exit, is not counted)
IMPORTS = ("import time; began = time.perf_counter(); import torch, transformers, trl; from trl import DPOTrainer; "
           "print(time.perf_counter() - began)")


def evaluate_many(start: str, base: dict[str, str], candidates: int) -> list[float]:
    from llm2.evaluation import EvalJob
    from llm2.execution import make_executor
    from llm2.tasks import load_task
    from llm2.task_api.base import EvalSetting

    task = load_task("preference-hf")
    settings = task.parse_settings({**base, "start": start, "weights": "file"})
    task.prepare(settings)
    code = task.baselines["dpo"].code
    seconds = []
    with make_executor("local", task_spec="preference-hf", task=task, workers=1, timeout_s=300,
                       warm_settings=settings) as executor:
        executor.submit(EvalJob(code, EvalSetting(settings, seed=0))).result()  # the worker's own start-up
        for seed in range(candidates):
            result = executor.submit(EvalJob(code, EvalSetting(settings, seed=seed))).result()
            if result.status != "ok":
                raise SystemExit(f"{start}: the evaluation failed: {result.error}")
            seconds.append(result.seconds)
    return seconds


def bare_imports(repeats: int) -> list[float]:
    """In a worker's environment (secrets stripped, one thread), as the spawned process starts."""
    from llm2.sandbox.environment import stripped_environment

    times = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", IMPORTS], check=True, capture_output=True, text=True,
                              env=stripped_environment())
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from llm2.tasks.preference_hf.tiny import build_tiny_setup

    with tempfile.TemporaryDirectory(prefix="llm2-bench-spawn-") as folder:
        os.environ["LLM2_CACHE_DIR"] = str(Path(folder) / "cache")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        setup = build_tiny_setup(Path(folder))
        base = {"model": str(setup.model), "dataset": str(setup.dataset), "lr": "0.001",
                "max_steps": str(args.steps), "eval_size": "16", "batch_size": "8"}
        results = {start: evaluate_many(start, base, args.candidates) for start in ("fork", "spawn")}
    results["imports alone"] = bare_imports(3)
    print(f"{'':28s} {'median s':>9s} {'min s':>7s} {'max s':>7s}  n")
    for name, values in results.items():
        print(f"{name:28s} {statistics.median(values):9.2f} {min(values):7.2f} {max(values):7.2f}  {len(values)}")
    overhead = statistics.median(results["spawn"]) - statistics.median(results["fork"])
    print(f"spawn overhead per candidate (median spawn - median fork): {overhead:.2f} s; importing torch, "
          f"transformers and TRL's DPOTrainer alone takes {statistics.median(results['imports alone']):.2f} s")
    if args.json:
        args.json.write_text(json.dumps({"candidates": args.candidates, "steps": args.steps, "seconds": results,
                                         "overhead_s": overhead, "cores": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
