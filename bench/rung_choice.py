"""Which low rung of ``preference-synthetic`` ranks candidates as the full evaluation does.

    nice -n 10 python bench/rung_choice.py                  # the 19 catalog losses at 25, 50, 75 % of training
    nice -n 10 python bench/rung_choice.py --budgets 0.5 --archive RUN_DIR --no-catalog   # a recorded run's proposals

Every catalog loss is trained once per (budget share, training seed) and scored; the full evaluation is the
discovery's default (the whole budget, the mean of its 2 training seeds). Each candidate rung (a budget share with 1
seed or with both) is compared with it by the Spearman rank correlation over the losses (scipy), beside its cost as
a share of the full evaluation's core-seconds (measured: the processor seconds its evaluations took, summed over the
losses).
Training at a share of the budget is the first part of the same run (constant learning rate, the same batch order),
so a rung "along the same run" ranks exactly as a rung trained on its own.

With ``--archive``: the proposals a recorded default discovery evaluated (status ok; one per distinct fitness, since
equal fitness over both seeds means the same training, a behavioural duplicate) are trained at the low rungs only;
their recorded fitness is the full evaluation (the same training seeds, the whole budget).
"""

from __future__ import annotations

import argparse

from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.fanout import evaluate_grid
from llm2.execution import make_executor
from llm2.task_api.base import EvalSetting
from llm2.tasks import load_task

TASK = "preference-synthetic"


def recorded_proposals(run_dir: str) -> list[tuple[str, str, float]]:
    """(name, code, recorded fitness) of a run's evaluated proposals, one per distinct fitness."""
    from llm2.archive import Archive

    with Archive.open(run_dir, readonly=True) as archive:
        chosen = {}
        for c in archive.candidates():
            if c.generation > 0 and c.status == "ok" and c.fitness is not None:
                chosen.setdefault(round(c.fitness, 9), (c.name, c.code, c.fitness))
    return list(chosen.values())


def main() -> None:
    from scipy.stats import spearmanr

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--workers", type=int, default=DiscoveryConfig().resolved_workers())
    parser.add_argument("--archive", default=None, help="also a recorded run's proposals (its fitness is the full)")
    parser.add_argument("--no-catalog", action="store_true", help="only the recorded run's proposals")
    parser.add_argument("--retrain-full", action="store_true",
                        help="evaluate the recorded proposals in full again (the run was scored by other code or "
                             "another machine's world secret) instead of taking their recorded fitness")
    parser.add_argument("--seeds", type=int, default=DiscoveryConfig().seeds,
                        help="training seeds evaluated at the low rungs (the full evaluation uses the default 2)")
    args = parser.parse_args()
    task = load_task(TASK)
    settings = task.settings_from_dict({})
    task.prepare(settings)
    seeds = DiscoveryConfig().training_seeds()[:args.seeds]
    items = [] if args.no_catalog else [(name, task.baselines[name].code, None) for name in task.baselines]
    if args.archive:
        items += [(name, code, None if args.retrain_full else fitness)
                  for name, code, fitness in recorded_proposals(args.archive)]
    codes = [(i, code) for i, (_, code, _) in enumerate(items)]
    need_full = any(full is None for _, _, full in items)
    if need_full and len(seeds) < DiscoveryConfig().seeds:
        parser.error("the catalog's full evaluation needs every default training seed: drop --seeds or add "
                     "--no-catalog")
    budgets = [*args.budgets, *([1.0] if need_full else [])]
    per_seed = {}  # (budget, seed) -> {key: (fitness, seconds)}
    with make_executor("local", task_spec=TASK, task=task, workers=args.workers, timeout_s=900,
                       warm_settings=settings) as executor:
        for seed in seeds:
            grid = evaluate_grid(executor, codes, [EvalSetting(settings, budget=b) for b in budgets], [seed])
            for position, budget in enumerate(budgets):
                per_seed[(budget, seed)] = {key: (grid[(position, key)].fitness, grid[(position, key)].metrics.get("cpu_seconds"))
                                            for key, _ in codes}
            for (_, key), result in grid.items():
                if result.status != "ok":
                    print(f"{items[key][0]} seed {seed}: {result.status}: {result.error}", flush=True)
    full = {key: recorded if recorded is not None else _mean([per_seed[(1.0, s)][key][0] for s in seeds])
            for key, (_, _, recorded) in enumerate(items)}
    for key, (name, _, _) in enumerate(items):
        print(f"{name}: full={full[key]} " + " ".join(f"b{b:g}s{s}={per_seed[(b, s)][key][0]}"
                                                      for b in budgets for s in seeds), flush=True)
    full_cost = (sum(per_seed[(1.0, s)][key][1] for s in seeds for key, _ in codes) if need_full else None)
    for budget in args.budgets:
        for count in range(1, len(seeds) + 1):
            used = seeds[:count]
            low = {key: _mean([per_seed[(budget, s)][key][0] for s in used]) for key, _ in codes}
            keys = [k for k, _ in codes if low[k] is not None and full[k] is not None]
            rho = spearmanr([low[k] for k in keys], [full[k] for k in keys]).statistic
            cost = sum(per_seed[(budget, s)][k][1] for s in used for k, _ in codes)
            share = f"cost={cost / full_cost:.2f} of the full evaluation" if full_cost else f"cost={cost:.0f} s"
            print(f"rung budget={budget:g} seeds={count}: spearman={rho:.3f} n={len(keys)} {share}", flush=True)


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


if __name__ == "__main__":
    main()
