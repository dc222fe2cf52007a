"""What the evaluation cascade saves on a batch where some candidates collapse or diverge.

    python bench/cascade.py [--budget 1.0] [--seeds 1]

The same batch runs twice through the local executor, with the probe (cascade on) and without (cascade off): four
honest losses (dpo, hinge, ipo, discopop), three that push the policy towards the rejected side (their judge score
collapses), two that overflow after a few steps, one that breaks the contract; one job per candidate and training
seed. As in ``llm2 discover``, the reference baseline's (dpo's) probe fitness at each seed is measured first (with
the cascade on, not counted below; the discovery has it from its baselines) and goes with every job
(``EvalJob.baseline_probe``): the task's relative rule stops a run whose probe, after a quarter of training, has
fallen below the untrained start by more than half of what dpo gained by then.

Each way has one warm worker; the jobs run one at a time, each on both ways in turn (which goes first alternates),
so that drifting load on a shared machine hits both alike. Prints each job's outcome, the evaluation seconds
summed over the batch for each way (each job's seconds from submission to its scored result), which jobs the
probe stopped and the seconds that saved, and last the ratio of evaluation seconds without and with the cascade.
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

HEAD = ("def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps,"
        " beta):\n"
        "    x = beta * ((policy_chosen_logps - policy_rejected_logps)"
        " - (reference_chosen_logps - reference_rejected_logps))\n")
BATCH = {
    "dpo": OBJECTIVES["dpo"].code,
    "hinge": OBJECTIVES["hinge"].code,
    "ipo": OBJECTIVES["ipo"].code,
    "discopop": OBJECTIVES["discopop"].code,
    "anti_dpo (collapses)": HEAD + "    return F.logsigmoid(x)\n",
    "linear_anti (collapses)": HEAD + "    return x\n",
    "unlikelihood (collapses)": HEAD + "    return policy_chosen_logps + 0.0 * x\n",
    "exp_200 (diverges)": HEAD + "    return -torch.exp(200.0 * x)\n",
    "exp_100 (diverges)": HEAD + "    return -torch.exp(100.0 * x)\n",
    "scalar (contract)": HEAD + "    return -F.logsigmoid(x).mean()\n",
}
REFERENCE = "dpo"


def executor_for(task, settings, cascade: bool):
    return make_executor("local", task_spec=task.name, task=task, workers=1, timeout_s=600, cascade=cascade,
                         warm_settings=settings)


def baseline_probes(executor, task, settings, seeds: int, budget: float) -> dict[int, float]:
    """The reference baseline's probe fitness per training seed, as the discovery records it."""
    results = {seed: executor.submit(EvalJob(task.baselines[REFERENCE].code, EvalSetting(settings, seed, budget)))
               .result() for seed in range(seeds)}
    missing = [seed for seed, result in results.items() if result.probe_fitness is None]
    if missing:
        raise SystemExit(f"{REFERENCE} gave no probe at seeds {missing}: {results[missing[0]].error}")
    return {seed: result.probe_fitness for seed, result in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    task = load_task("preference-synthetic")
    settings = task.parse_settings({"fitness": "judge"})  # measured on the judge: no dpo frontier traced
    task.prepare(settings)
    load_before = os.getloadavg()[0]
    executors = {cascade: executor_for(task, settings, cascade) for cascade in (True, False)}
    try:
        for executor in executors.values():  # both workers started and warm before the clock runs
            executor.submit(EvalJob(OBJECTIVES["dpo"].code, EvalSetting(settings, 0, 0.02))).result()
        start = time.perf_counter()
        probes = baseline_probes(executors[True], task, settings, args.seeds, args.budget)
        probe_seconds = time.perf_counter() - start
        reference = task.scorer(settings).reference_metrics()
        print(f"untrained start {reference.fitness:.3f}; {REFERENCE}'s probe per seed: "
              + ", ".join(f"{seed}: {value:.3f}" for seed, value in probes.items())
              + f" (measured in {probe_seconds:.1f} s)", flush=True)
        # job by job, the two ways in turn (which goes first alternates): drifting load hits both alike
        results: dict[bool, dict] = {True: {}, False: {}}
        jobs = [(name, code, seed) for name, code in BATCH.items() for seed in range(args.seeds)]
        for turn, (name, code, seed) in enumerate(jobs):
            for cascade in ((True, False) if turn % 2 == 0 else (False, True)):
                job = EvalJob(code, EvalSetting(settings, seed, args.budget), name, probes.get(seed))
                results[cascade][(name, seed)] = result = executors[cascade].submit(job).result()
                label = "cascade_on" if cascade else "cascade_off"
                fitness = "" if result.fitness is None else f" fitness={result.fitness:.3f}"
                probe = "" if result.probe_fitness is None else f" probe={result.probe_fitness:.3f}"
                print(f"{label} {name} seed {seed}: {result.status}/{result.stage} {result.seconds:.1f}s{fitness}"
                      f"{probe}{' ' + result.error if result.error else ''}", flush=True)
    finally:
        for executor in executors.values():
            executor.close()
    spent = {cascade: sum(r.seconds for r in by_job.values()) for cascade, by_job in results.items()}
    # stopped by the probe's verdict: runs that fail at the probe only with the cascade on (a divergence fails
    # at the same step either way)
    stopped = [key for key, result in results[True].items()
               if result.stage == "probe" and results[False][key].status == "ok"]
    saved = sum(results[False][key].seconds - results[True][key].seconds for key in stopped)
    print(f"cores={os.cpu_count()} load_1min_before={load_before:.2f} load_1min_after={os.getloadavg()[0]:.2f} "
          f"budget={args.budget} seeds={args.seeds} candidates={len(BATCH)}")
    print(f"cascade_on_eval_s={spent[True]:.1f} cascade_off_eval_s={spent[False]:.1f}")
    print(f"stopped_by_probe={len(stopped)} of {len(jobs)} jobs: "
          + ", ".join(f"{name} (seed {seed})" for name, seed in stopped))
    print(f"saved_by_stopped_jobs_s={saved:.1f}")
    print(f"eval_seconds_cascade_off_vs_on={spent[False] / spent[True]:.2f}")


if __name__ == "__main__":
    main()
