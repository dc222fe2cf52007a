"""What behavioural fingerprints (and, with ``--rungs``, multi-fidelity rungs) save in the default discovery.

    python bench/search_efficiency.py                       # 5 search seeds, the default discovery, before/after
    python bench/search_efficiency.py --search-seeds 2 --generations 4   # smaller
    python bench/search_efficiency.py --rungs --catalog     # also successive halving, and the catalog's rungs

For each search seed the default discovery (``preference-synthetic``, its offline symbolic proposer, the default
generations, population and training seeds) runs twice in this process, one way after the other on the same
machine: **before** (every candidate with new code is trained: fingerprints off) and **after** (behavioural
duplicates are not trained; with ``--rungs`` also successive halving). Figures, per seed and as medians:

- (a) ``dup_share``: the share of evaluation core-seconds (the seconds each candidate's evaluations took, summed,
  baselines included) spent on candidates behaviourally identical to an earlier evaluated one. Fingerprints are
  taken after the fact for both runs, in a confined process (``confined_call``), with the task's own tolerance.
- (b) ``to_target_s``: evaluation core-seconds until the best proposal first reaches the fitness that the *before*
  run ends with at that seed (the unit: summed evaluation seconds, in the order candidates finished). The peer is
  the before run of the same seed, measured in the same process: the ratio after / before is the figure to keep.
- (d) with ``--compare-islands N``: instead, a single conversation against N islands (``--islands N``, migration
  every ``--migrate-every`` generations) at equal evaluation core-seconds (the smaller of the two runs' totals, per
  seed): the best fitness reached within it (median over seeds), and the number of distinct behavioural clusters
  among the top 20 proposals (fingerprints within ``--cluster-radius`` of a cluster's first member, in fitness order);
  a third arm runs the same islands with ``--map-elites`` (parents drawn across the task's behaviour cells), its
  figures beside the other two at the budget all three reached.
- (c) with ``--rungs``: the Spearman correlation between each lower rung and the full evaluation, over the
  candidates that reached the full evaluation (the run's ``rung_correlations`` event); with ``--catalog`` also over
  the task's whole catalog of known losses, each evaluated on the lowest rung and in full.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path

from llm2.archive import Archive, CandidateRecord
from llm2.discovery.behaviour import same_behaviour
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.evaluations import evaluate_grid
from llm2.discovery.loop import Discovery
from llm2.discovery.progress import Progress
from llm2.discovery.run import create_run
from llm2.execution import make_executor
from llm2.proposers import make_proposer
from llm2.tasks import load_task
from llm2.task_api.base import EvalSetting

TASK = "preference-synthetic"
ENTRY = "llm2.tasks.preference.fingerprint:confined_fingerprint"


def run_once(root: Path, label: str, seed: int, generations: int, after: bool, rungs: bool, islands: int = 1,
             migrate_every: int = 2, map_elites: bool = False) -> Path:
    task = load_task(TASK)
    config = DiscoveryConfig(task=TASK, generations=generations, seed=seed, fingerprints=after,
                             rungs=after and rungs, islands=islands, migrate_every=migrate_every,
                             map_elites=map_elites)
    settings = task.settings_from_dict(config.task_settings)
    task.prepare(settings)
    run_dir = root / f"{label}-{seed}"
    archive = create_run(config, run_dir, task)
    with make_executor("local", task_spec=TASK, task=task, workers=config.resolved_workers(),
                       timeout_s=config.timeout_s, warm_settings=settings) as executor:
        Discovery(config, task, archive, make_proposer("symbolic", seed=seed), executor,
                  Progress(generations, stream=open("/dev/null", "w"))).run()
    archive.close()
    return run_dir


def evaluated(candidates: list[CandidateRecord]) -> list[CandidateRecord]:
    """Candidates whose evaluation cost something (baselines included), in the order they finished."""
    spent = [c for c in candidates if (c.seconds or 0) > 0]
    return sorted(spent, key=lambda c: c.finished_at or math.inf)


def duplicate_share(run_dir: Path, beta: float, tolerance: float) -> float:
    from llm2.sandbox.confined_call import call_confined

    with Archive.open(run_dir, readonly=True) as archive:
        spent = sorted(evaluated(archive.candidates()), key=lambda c: c.index)
    answers = call_confined(TASK, ENTRY, [(str(c.id), c.code) for c in spent], {"beta": beta}, timeout_s=300)
    prints = {int(a.name): tuple(a.value or ()) for a in answers}
    wasted, seen = 0.0, []
    for candidate in spent:
        vector = prints.get(candidate.id, ())
        if any(same_behaviour(vector, earlier, tolerance) for earlier in seen):
            wasted += candidate.seconds
        elif vector:
            seen.append(vector)
    return wasted / sum(c.seconds for c in spent)


def seconds_to(run_dir: Path, target: float) -> float:
    """Evaluation core-seconds until a proposal first scores ``target`` or more (inf: never)."""
    with Archive.open(run_dir, readonly=True) as archive:
        spent = 0.0
        for candidate in evaluated(archive.candidates()):
            spent += candidate.seconds
            if candidate.generation > 0 and candidate.status == "ok" and (candidate.fitness or -math.inf) >= target:
                return spent
    return math.inf


def final_best(run_dir: Path) -> float:
    with Archive.open(run_dir, readonly=True) as archive:
        best = archive.best(1)
    return best[0].fitness if best else -math.inf


def rung_event(run_dir: Path) -> list[dict]:
    with Archive.open(run_dir, readonly=True) as archive:
        events = [e for e in archive.run_events() if e.kind == "rung_correlations"]
    return events[-1].detail["correlations"] if events else []


def best_within(run_dir: Path, budget_s: float) -> float:
    """The best proposal's fitness among those finished within ``budget_s`` evaluation core-seconds."""
    best, spent = -math.inf, 0.0
    with Archive.open(run_dir, readonly=True) as archive:
        for candidate in evaluated(archive.candidates()):
            spent += candidate.seconds
            if spent > budget_s:
                break
            if candidate.generation > 0 and candidate.fitness is not None:
                best = max(best, candidate.fitness)
    return best


def total_seconds(run_dir: Path) -> float:
    with Archive.open(run_dir, readonly=True) as archive:
        return sum(c.seconds for c in evaluated(archive.candidates()))


def top_clusters(run_dir: Path, radius: float, top: int = 20) -> int:
    """Distinct behavioural clusters among the ``top`` proposals by fitness (leader clustering on fingerprints)."""
    from llm2.archive.search_tables import fingerprints

    with Archive.open(run_dir, readonly=True) as archive:
        vectors = {f.candidate_id: f.vector for f in fingerprints(archive)}
        best = [c for c in archive.best(top) if c.id in vectors]
    leaders: list[tuple[float, ...]] = []
    for candidate in best:
        vector = vectors[candidate.id]
        if not any(len(vector) == len(lead) and math.dist(vector, lead) <= radius for lead in leaders):
            leaders.append(vector)
    return len(leaders)


def compare_islands(args) -> None:
    rows, arms = [], ("single", "islands", "elites")
    with tempfile.TemporaryDirectory(prefix="llm2-bench-islands-") as tmp:
        for seed in range(args.search_seeds):
            runs = {"single": run_once(Path(tmp), "single", seed, args.generations, after=True, rungs=False),
                    "islands": run_once(Path(tmp), "islands", seed, args.generations, after=True, rungs=False,
                                        islands=args.compare_islands, migrate_every=args.migrate_every),
                    "elites": run_once(Path(tmp), "elites", seed, args.generations, after=True, rungs=False,
                                       islands=args.compare_islands, migrate_every=args.migrate_every,
                                       map_elites=True)}
            budget = min(total_seconds(run) for run in runs.values())
            row = {"seed": seed, "budget_s": budget,
                   **{f"best_{arm}": best_within(runs[arm], budget) for arm in arms},
                   **{f"clusters_{arm}": top_clusters(runs[arm], args.cluster_radius) for arm in arms}}
            rows.append(row)
            print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)
    for key in [f"{kind}_{arm}" for kind in ("best", "clusters") for arm in arms]:
        print(f"median_{key}={statistics.median(r[key] for r in rows):.4f}")


def catalog_correlation(workers: int) -> None:
    """Every catalog loss on the lowest rung and in full: the Spearman correlation of the two rankings."""
    from scipy.stats import spearmanr

    from llm2.discovery.rungs import ladder_of

    task = load_task(TASK)
    config = DiscoveryConfig()
    settings = task.settings_from_dict({})
    task.prepare(settings)
    ladder = ladder_of(task.fidelity_rungs, config.seeds)
    codes = [(i, b.code) for i, b in enumerate(task.baselines.values())]
    names = list(task.baselines)
    with make_executor("local", task_spec=TASK, task=task, workers=workers, timeout_s=600,
                       warm_settings=settings) as executor:
        low = evaluate_grid(executor, codes, [EvalSetting(settings, budget=ladder[0].budget)],
                            config.training_seeds()[:ladder[0].seeds])
        full = evaluate_grid(executor, codes, [EvalSetting(settings)], config.training_seeds())
    pairs = [(low[(0, i)].fitness, full[(0, i)].fitness) for i, _ in codes
             if low[(0, i)].fitness is not None and full[(0, i)].fitness is not None]
    for i, name in enumerate(names):
        print(f"catalog {name}: rung0={low[(0, i)].fitness} full={full[(0, i)].fitness}")
    rho = spearmanr(*zip(*pairs)).statistic
    print(f"catalog_rung0_spearman={rho:.3f} n={len(pairs)} ({ladder[0].text()} vs the full evaluation)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-seeds", type=int, default=5)
    parser.add_argument("--generations", type=int, default=DiscoveryConfig().generations)
    parser.add_argument("--rungs", action="store_true", help="after: also successive halving over the task's rungs")
    parser.add_argument("--catalog", action="store_true", help="also the catalog's rung-to-full correlation")
    parser.add_argument("--compare-islands", type=int, default=0, metavar="N",
                        help="instead: a single conversation against N islands, and N islands with MAP-Elites, "
                        "at equal evaluation core-seconds")
    parser.add_argument("--migrate-every", type=int, default=DiscoveryConfig().migrate_every)
    parser.add_argument("--cluster-radius", type=float, default=0.1,
                        help="fingerprint distance within which two of the top 20 count as one cluster")
    args = parser.parse_args()
    if args.compare_islands:
        compare_islands(args)
        return
    task = load_task(TASK)
    beta = task.settings_from_dict({}).beta
    rows = []
    with tempfile.TemporaryDirectory(prefix="llm2-bench-search-") as tmp:
        for seed in range(args.search_seeds):
            before = run_once(Path(tmp), "before", seed, args.generations, after=False, rungs=False)
            after = run_once(Path(tmp), "after", seed, args.generations, after=True, rungs=args.rungs)
            target = final_best(before)
            row = {"seed": seed, "target": target,
                   "dup_before": duplicate_share(before, beta, task.fingerprint_tolerance),
                   "dup_after": duplicate_share(after, beta, task.fingerprint_tolerance),
                   "to_target_before": seconds_to(before, target), "to_target_after": seconds_to(after, target),
                   "best_after": final_best(after), "rungs": rung_event(after)}
            rows.append(row)
            print(f"seed={seed} target={target:.4f} dup_share before={row['dup_before']:.1%} "
                  f"after={row['dup_after']:.1%} to_target_s before={row['to_target_before']:.0f} "
                  f"after={row['to_target_after']:.0f} best_after={row['best_after']:.4f} rungs={row['rungs']}",
                  flush=True)
    if rows:  # --search-seeds 0: the catalog's correlation alone
        before_s = statistics.median(r["to_target_before"] for r in rows)
        after_s = statistics.median(r["to_target_after"] for r in rows)
        print(f"median_to_target_s before={before_s:.0f} after={after_s:.0f} ratio_after_over_before="
              f"{after_s / before_s:.2f}")
        print(f"dup_share_max before={max(r['dup_before'] for r in rows):.1%} "
              f"after={max(r['dup_after'] for r in rows):.1%}")
    if args.catalog:
        catalog_correlation(DiscoveryConfig().resolved_workers())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
