"""Evaluations per hour through the local executor with 1 and 2 warm workers (full budget, cascade on).

    python bench/throughput.py [--jobs 8] [--budget 1.0]

Each batch is the same list of catalog losses and seeds at the task's default setting; workers are started and
warm before the clock runs (start-up is reported apart). As in ``llm2 discover``, each job carries dpo's probe
fitness at its seed (measured once, before either batch), so the cascade judges probes by the relative rule. The
last line is the speed-up of 2 workers over 1.
"""

from __future__ import annotations

import argparse
import os
import time

from llm2.evaluation import EvalJob
from llm2.execution import make_executor
from llm2.tasks import load_task
from llm2.task_api.base import EvalSetting
from llm2.tasks.preference.catalog import OBJECTIVES

LOSSES = ("dpo", "hinge", "ipo", "cdpo", "robust", "bco_pair", "apo_zero", "discopop")


def batch(settings, jobs: int, budget: float, probes: dict[int, float]) -> list[EvalJob]:
    jobs_list = []
    for i in range(jobs):
        seed = i // len(LOSSES)
        jobs_list.append(EvalJob(OBJECTIVES[LOSSES[i % len(LOSSES)]].code, EvalSetting(settings, seed, budget),
                                 str(i), probes.get(seed)))
    return jobs_list


def executor_for(task, settings, workers: int):
    return make_executor("local", task_spec=task.name, task=task, workers=workers, timeout_s=600,
                         warm_settings=settings)


def dpo_probes(task, settings, seeds: int, budget: float) -> dict[int, float]:
    with executor_for(task, settings, min(seeds, 2)) as executor:
        futures = {seed: executor.submit(EvalJob(OBJECTIVES["dpo"].code, EvalSetting(settings, seed, budget)))
                   for seed in range(seeds)}
        return {seed: f.result().probe_fitness for seed, f in futures.items() if f.result().probe_fitness is not None}


def measure(task, settings, workers: int, jobs: list[EvalJob]) -> tuple[float, float, int]:
    start = time.perf_counter()
    with executor_for(task, settings, workers) as executor:
        warm = [executor.submit(EvalJob(OBJECTIVES["dpo"].code, EvalSetting(settings, 0, 0.02)))
                for _ in range(workers)]
        for future in warm:
            future.result()
        startup = time.perf_counter() - start
        start = time.perf_counter()
        results = [f.result() for f in [executor.submit(job) for job in jobs]]
        elapsed = time.perf_counter() - start
    for job, result in zip(jobs, results):
        if result.status != "ok":
            print(f"  job {job.key}: {result.status}/{result.stage} {result.error}")
    return startup, elapsed, sum(r.status == "ok" for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--budget", type=float, default=1.0)
    args = parser.parse_args()
    task = load_task("preference-synthetic")
    settings = task.parse_settings({"fitness": "judge"})  # measured on the judge: no dpo frontier traced
    task.prepare(settings)
    load_before = os.getloadavg()[0]
    probes = dpo_probes(task, settings, (args.jobs - 1) // len(LOSSES) + 1, args.budget)
    jobs = batch(settings, args.jobs, args.budget, probes)
    rates = {}
    for workers in (1, 2):
        startup, elapsed, ok = measure(task, settings, workers, jobs)
        rates[workers] = len(jobs) / elapsed * 3600
        print(f"workers={workers} startup_s={startup:.1f} batch_s={elapsed:.1f} ok={ok}/{len(jobs)} "
              f"evals_per_hour={rates[workers]:.0f} load_1min={os.getloadavg()[0]:.2f}")
    print(f"cores={os.cpu_count()} jobs={args.jobs} budget={args.budget} load_1min_before={load_before:.2f}")
    print(f"evals_per_hour_1_worker={rates[1]:.0f}")
    print(f"evals_per_hour_2_workers={rates[2]:.0f}")
    print(f"speedup_2_vs_1={rates[2] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
