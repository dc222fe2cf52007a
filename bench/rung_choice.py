"""Which low rung of ``preference-synthetic`` ranks candidates as the full evaluation does.

    nice -n 10 python bench/rung_choice.py                  # the 19 catalog losses
    nice -n 10 python bench/rung_choice.py --budgets 0.25 0.5

Every catalog loss is trained once per (budget share, training seed) and scored; the full evaluation is the
discovery's default (the whole budget, the mean of its 2 training seeds). Each candidate rung (a budget share with 1
seed or with both) is compared with it by the Spearman rank correlation over the losses (scipy), beside its cost as
a share of the full evaluation's core-seconds (measured: the seconds its evaluations took, summed over the losses).
Training at a share of the budget is the first part of the same run (constant learning rate, the same batch order),
so a rung "along the same run" ranks exactly as a rung trained on its own.
"""

from __future__ import annotations

import argparse

from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.evaluations import evaluate_grid
from llm2.execution import make_executor
from llm2.task_api.base import EvalSetting
from llm2.tasks import load_task

TASK = "preference-synthetic"


def main() -> None:
    from scipy.stats import spearmanr

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--workers", type=int, default=DiscoveryConfig().resolved_workers())
    args = parser.parse_args()
    task = load_task(TASK)
    settings = task.settings_from_dict({})
    task.prepare(settings)
    seeds = DiscoveryConfig().training_seeds()
    names = list(task.baselines)
    codes = [(i, task.baselines[name].code) for i, name in enumerate(names)]
    budgets = [*args.budgets, 1.0]
    per_seed = {}  # (budget, seed) -> {key: (fitness, seconds)}
    with make_executor("local", task_spec=TASK, task=task, workers=args.workers, timeout_s=900,
                       warm_settings=settings) as executor:
        for seed in seeds:
            grid = evaluate_grid(executor, codes, [EvalSetting(settings, budget=b) for b in budgets], [seed])
            for position, budget in enumerate(budgets):
                per_seed[(budget, seed)] = {key: (grid[(position, key)].fitness, grid[(position, key)].seconds)
                                            for key, _ in codes}
    full = {key: _mean([per_seed[(1.0, s)][key][0] for s in seeds]) for key, _ in codes}
    full_cost = sum(per_seed[(1.0, s)][key][1] for s in seeds for key, _ in codes)
    for key, name in enumerate(names):
        print(f"{name}: " + " ".join(f"b{b:g}s{s}={per_seed[(b, s)][key][0]:.4f}" for b in budgets for s in seeds),
              flush=True)
    for budget in args.budgets:
        for count in range(1, len(seeds) + 1):
            used = seeds[:count]
            low = {key: _mean([per_seed[(budget, s)][key][0] for s in used]) for key, _ in codes}
            keys = [k for k, _ in codes if low[k] is not None and full[k] is not None]
            rho = spearmanr([low[k] for k in keys], [full[k] for k in keys]).statistic
            cost = sum(per_seed[(budget, s)][k][1] for s in used for k, _ in codes) / full_cost
            print(f"rung budget={budget:g} seeds={count}: spearman={rho:.3f} n={len(keys)} "
                  f"cost={cost:.2f} of the full evaluation", flush=True)


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


if __name__ == "__main__":
    main()
