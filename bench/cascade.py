"""What the evaluation cascade saves on a batch where some candidates collapse or diverge.

    python bench/cascade.py [--budget 2.0] [--workers 1]

The same batch runs twice through the local executor, with the probe (cascade on) and without (cascade off):
three honest losses (dpo, hinge, ipo), three that push the policy towards the rejected side (their reward
collapses), two that overflow after a few steps, one that breaks the contract. Prints each candidate's outcome,
each batch's wall time and evaluation seconds (summed over candidates: the compute spent, less sensitive to how
jobs happen to pack onto workers), and last the ratio of evaluation seconds without and with the cascade. At budget 1.0 the task's probe (25 % of training, reward more than
0.15 below the reference) lets the collapsing losses through — their reward is still falling there — so the
default budget is 2.0, a longer run of the kind where stopping early pays.
"""

from __future__ import annotations

import argparse
import os
import time

from llm2.execution import EvalJob, make_executor
from llm2.objectives import OBJECTIVES
from llm2.tasks import get_task
from llm2.tasks.base import EvalSetting

HEAD = ("def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
        "    x = beta * ((policy_chosen_logps - policy_rejected_logps)"
        " - (reference_chosen_logps - reference_rejected_logps))\n")
BATCH = {
    "dpo": OBJECTIVES["dpo"].code,
    "hinge": OBJECTIVES["hinge"].code,
    "ipo": OBJECTIVES["ipo"].code,
    "anti_dpo (collapses)": HEAD + "    return F.logsigmoid(x)\n",
    "linear_anti (collapses)": HEAD + "    return x\n",
    "unlikelihood (collapses)": HEAD + "    return policy_chosen_logps + 0.0 * x\n",
    "exp_200 (diverges)": HEAD + "    return -torch.exp(200.0 * x)\n",
    "exp_100 (diverges)": HEAD + "    return -torch.exp(100.0 * x)\n",
    "scalar (contract)": HEAD + "    return -F.logsigmoid(x).mean()\n",
}


def run_batch(setting: EvalSetting, cascade: bool, workers: int) -> tuple[float, dict]:
    with make_executor("local", task_name="preference-synthetic", workers=workers, timeout_s=600,
                       cascade=cascade) as executor:
        warm = [executor.submit(EvalJob(OBJECTIVES["dpo"].code, setting.replace(budget=0.02)))
                for _ in range(workers)]  # workers started and warm before the clock runs
        for future in warm:
            future.result()
        start = time.perf_counter()
        futures = {name: executor.submit(EvalJob(code, setting, name)) for name, code in BATCH.items()}
        results = {name: future.result() for name, future in futures.items()}
        return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    setting = EvalSetting(beta=0.05, budget=args.budget)
    get_task("preference-synthetic").prepare(setting)
    seconds, compute = {}, {}
    for cascade in (True, False):
        label = "cascade_on" if cascade else "cascade_off"
        seconds[label], results = run_batch(setting, cascade, args.workers)
        compute[label] = sum(result.seconds for result in results.values())
        for name, result in results.items():
            fitness = "" if result.fitness is None else f" fitness={result.fitness:.3f}"
            print(f"{label} {name}: {result.status}/{result.stage} {result.seconds:.1f}s{fitness}"
                  f"{' ' + result.error if result.error else ''}")
    print(f"cores={os.cpu_count()} workers={args.workers} budget={args.budget} candidates={len(BATCH)}")
    for label in ("cascade_on", "cascade_off"):
        print(f"{label}_wall_s={seconds[label]:.1f} {label}_eval_s={compute[label]:.1f}")
    print(f"wall_cascade_off_vs_on={seconds['cascade_off'] / seconds['cascade_on']:.2f}")
    print(f"eval_seconds_cascade_off_vs_on={compute['cascade_off'] / compute['cascade_on']:.2f}")


if __name__ == "__main__":
    main()
