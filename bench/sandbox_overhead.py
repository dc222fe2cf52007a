"""What the sandbox costs per candidate: a warm fork against a fresh interpreter per candidate, same job, one run.

    python bench/sandbox_overhead.py [--repeats 5] [--budget 0.1]

Three ways to evaluate the same DPO job (a tenth of the training budget, so fixed costs show):
  in-process   trusted code in this process, no isolation at all (the floor);
  warm fork    llm2's sandbox: a warm runner forks a confined child per candidate, scores in the runner
               (cascade off: its probe costs one quick scoring, measured by bench/cascade.py);
  fresh python a new ``python -c`` interpreter per candidate that imports torch, loads the world, evaluates.
Prints medians in seconds; the last lines are the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

from llm2.candidate import load_function
from llm2.evaluation import evaluate_trusted
from llm2.objectives import OBJECTIVES
from llm2.sandbox.limits import SandboxLimits
from llm2.sandbox.runner import SandboxOptions, SandboxRunner
from llm2.tasks import get_task
from llm2.tasks.base import EvalSetting

FRESH = """
import torch
torch.set_num_threads(1)
from llm2.candidate import load_function
from llm2.evaluation import evaluate_trusted
from llm2.objectives import OBJECTIVES
from llm2.tasks import get_task
from llm2.tasks.base import EvalSetting
task = get_task("preference-synthetic")
setting = EvalSetting(beta=0.05, budget={budget})
task.prepare(setting)
print(evaluate_trusted(task, load_function(OBJECTIVES["dpo"].code, task.contract), setting).fitness)
"""


def median_seconds(run, repeats: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    setting = EvalSetting(beta=0.05, budget=args.budget)
    task = get_task("preference-synthetic")
    task.prepare(setting)
    code = OBJECTIVES["dpo"].code
    fn = load_function(code, task.contract)
    runner = SandboxRunner(task)
    runner.prepare(setting)
    options = SandboxOptions(SandboxLimits(timeout_s=300), cascade=False)  # the probe is the cascade's cost
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def fresh():
        out = subprocess.run([sys.executable, "-c", FRESH.format(budget=args.budget)], env=env, check=True,
                             capture_output=True, text=True)
        return float(out.stdout.split()[-1])

    try:
        # interleaved rounds, so drifting load on a shared machine hits all three alike
        rounds = {"in_process": [], "warm_fork": [], "fresh_python": []}
        values = {}
        for _ in range(args.repeats):
            for name, run in (("in_process", lambda: evaluate_trusted(task, fn, setting).fitness),
                              ("warm_fork", lambda: runner.evaluate(code, setting, options).fitness),
                              ("fresh_python", fresh)):
                seconds, values[name] = median_seconds(run, 1)
                rounds[name].append(seconds)
    finally:
        runner.close()
    medians = {name: statistics.median(times) for name, times in rounds.items()}
    assert len(set(values.values())) == 1, f"the three ways disagree on the fitness: {values}"
    print(f"cores={os.cpu_count()} repeats={args.repeats} budget={args.budget} fitness={values['warm_fork']:.4f}")
    for name, seconds in medians.items():
        print(f"{name}_s={seconds:.3f}")
    print(f"sandbox_overhead_s={medians['warm_fork'] - medians['in_process']:.3f}")
    print(f"warm_fork_vs_in_process={medians['warm_fork'] / medians['in_process']:.2f}")
    print(f"fresh_python_vs_warm_fork={medians['fresh_python'] / medians['warm_fork']:.2f}")


if __name__ == "__main__":
    main()
