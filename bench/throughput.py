"""Evaluations per hour through the local executor with 1 and 2 warm workers (full budget, cascade on).

    python bench/throughput.py [--jobs 8] [--budget 1.0]

Each batch is the same list of catalog losses and seeds; workers are started and warm before the clock runs
(start-up is reported apart). The last line is the speed-up of 2 workers over 1.
"""

from __future__ import annotations

import argparse
import os
import time

from llm2.execution import EvalJob, make_executor
from llm2.objectives import OBJECTIVES
from llm2.tasks import get_task
from llm2.tasks.base import EvalSetting

LOSSES = ("dpo", "hinge", "ipo", "cdpo", "robust", "bco_pair", "apo_zero", "discopop")


def batch(jobs: int, budget: float) -> list[EvalJob]:
    return [EvalJob(OBJECTIVES[LOSSES[i % len(LOSSES)]].code, EvalSetting(beta=0.05, seed=i // len(LOSSES),
                                                                           budget=budget), str(i))
            for i in range(jobs)]


def measure(workers: int, jobs: list[EvalJob]) -> tuple[float, float, int]:
    start = time.perf_counter()
    with make_executor("local", task_name="preference-synthetic", workers=workers, timeout_s=600) as executor:
        warm = [executor.submit(EvalJob(OBJECTIVES["dpo"].code, EvalSetting(budget=0.02))) for _ in range(workers)]
        for future in warm:
            future.result()
        startup = time.perf_counter() - start
        start = time.perf_counter()
        results = [f.result() for f in [executor.submit(job) for job in jobs]]
        elapsed = time.perf_counter() - start
    return startup, elapsed, sum(r.status == "ok" for r in results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--budget", type=float, default=1.0)
    args = parser.parse_args()
    get_task("preference-synthetic").prepare(EvalSetting())
    jobs = batch(args.jobs, args.budget)
    rates = {}
    for workers in (1, 2):
        startup, elapsed, ok = measure(workers, jobs)
        rates[workers] = len(jobs) / elapsed * 3600
        print(f"workers={workers} startup_s={startup:.1f} batch_s={elapsed:.1f} ok={ok}/{len(jobs)} "
              f"evals_per_hour={rates[workers]:.0f}")
    print(f"cores={os.cpu_count()} jobs={args.jobs} budget={args.budget}")
    print(f"evals_per_hour_1_worker={rates[1]:.0f}")
    print(f"evals_per_hour_2_workers={rates[2]:.0f}")
    print(f"speedup_2_vs_1={rates[2] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
