"""What behavioural fingerprints (and, with ``--rungs``, multi-fidelity rungs) save in the default discovery.

    python bench/search_efficiency.py                       # 5 search seeds, the default discovery, before/after
    python bench/search_efficiency.py --search-seeds 2 --generations 4   # smaller
    python bench/search_efficiency.py --rungs --catalog     # also successive halving, and the catalog's rungs
    python bench/search_efficiency.py --after-generations 36   # the after run may go on to reach the target
    python bench/search_efficiency.py --out DIR --results before_after.jsonl          # keep runs and figures
    python bench/search_efficiency.py --compare-islands 2 --out DIR --results islands.jsonl   # reuses DIR's after runs

Every run uses ``--workers`` (2) evaluation workers, one run at a time. With ``--out`` the runs stay in DIR and a
run finished there is reused (a run cut short is started again), so the islands comparison takes its single
conversation from the before/after bench's *after* run instead of running it twice; ``--results`` appends every
figure as a JSON line the moment it is known, so a bench cut short still leaves its finished seeds.

For each search seed the default discovery (``preference-synthetic``, its offline symbolic proposer, the default
generations, population and training seeds) runs twice in this process, one way after the other on the same
machine: **before** (every candidate with new code is trained on every seed: fingerprints and seed racing off) and
**after** (today's default: behavioural duplicates are not trained, and a proposal's second seed only if its first
could still be the best; ``--no-race`` without the racing; with ``--rungs`` also successive halving). Figures, per
seed and as medians:

- (a) ``dup_share``: the share of evaluation core-seconds (the processor seconds of each candidate's evaluations:
  worker, candidate and scorer, summed, baselines included) spent on candidates behaviourally identical to an
  earlier evaluated one. Fingerprints are taken after the fact for both runs, in a confined process
  (``confined_call``), with the task's own tolerance.
- (b) ``to_target_s``: evaluation core-seconds until the best proposal first reaches the fitness that the *before*
  run ends with at that seed (in the order candidates finished). The peer is the before run of the same seed,
  measured in the same process: the ratio after / before is the figure to keep. An after run that spends less per
  generation may go on for more generations (``--after-generations``, resumed 4 at a time while it has neither
  reached the target nor spent the before run's whole core-seconds): the time to a target is only measured if the
  run is long enough to get there. Reached beyond the before run's spend counts as not sooner (inf), and
  ``to_target_after_default_generations`` gives the figure over its first ``--generations`` alone.
- Processor seconds do not grow with the machine's other load as clock seconds do (a run recorded before they were
  counted falls back to the clock). Beside each figure the bench gives the same figure counted in trained
  evaluations (``dup_evals``, ``evals_to_target``, and a budget in evaluations for (d)); with rungs, a candidate
  stopped on a low rung counts as one evaluation there, so only core-seconds compare across the two ways.
- (d) with ``--compare-islands N``: instead, a single conversation (the *after* run) against N islands with
  ``--map-elites`` (parents drawn across the task's behaviour cells) and N islands alone (``--islands N``, migration
  every ``--migrate-every`` generations), run in that order over all seeds, at equal evaluation core-seconds (the
  smallest of the arms' totals, per seed): the best proposal's fitness reached within it (median over seeds), and the
  number of distinct behavioural clusters among the top 20 proposals evaluated within it (fingerprints within
  ``--cluster-radius`` of a cluster's first member, in fitness order).
- (c) with ``--rungs``: the Spearman correlation between each lower rung and the full evaluation, over the
  candidates that reached the full evaluation (the run's ``rung_correlations`` event); with ``--catalog`` also over
  the task's whole catalog of known losses, each evaluated on the lowest rung and in full.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from llm2.archive import Archive, CandidateRecord
from llm2.discovery.behaviour import same_behaviour
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.fanout import evaluate_grid
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
             migrate_every: int = 2, map_elites: bool = False, workers: int | None = None,
             task_spec: str = TASK, race: bool | None = None) -> Path:
    """One default discovery in ``root/label-seed``; a run this bench finished earlier there is reused as it is."""
    run_dir = root / f"{label}-{seed}"
    done = run_dir / "bench-done"
    if done.exists():
        return run_dir
    shutil.rmtree(run_dir, ignore_errors=True)  # a run cut short: started again, so every figure is a whole run
    task = load_task(task_spec)
    config = DiscoveryConfig(task=task_spec, generations=generations, seed=seed, fingerprints=after,
                             rungs=after and rungs, race=after and (DiscoveryConfig().race if race is None else race),
                             islands=islands, migrate_every=migrate_every,
                             map_elites=map_elites, workers=workers)
    settings = task.settings_from_dict(config.task_settings)
    task.prepare(settings)
    archive = create_run(config, run_dir, task)
    with make_executor("local", task_spec=task_spec, task=task, workers=config.resolved_workers(),
                       timeout_s=config.timeout_s, warm_settings=settings) as executor:
        Discovery(config, task, archive, make_proposer("symbolic", seed=seed), executor,
                  Progress(generations, stream=open("/dev/null", "w"))).run()
    archive.close()
    done.touch()
    return run_dir


def run_to_target(root: Path, label: str, seed: int, generations: int, most: int, target: float, budget: float,
                  step: int = 4, **options) -> Path:
    """An after run of ``generations``, then continued (resumed, ``step`` generations at a time, up to ``most``)
    while it has neither reached ``target`` nor spent ``budget`` (in its own baseline evaluations, so the load of
    the moment does not decide how long it may run): the time to the target needs a run long enough to get there,
    and no more. A resumed run asks for the same proposals a longer run would have asked
    for, and its ladder judges on the evidence recorded before."""
    from llm2.discovery.run import reopen_run

    run_dir = run_once(root, label, seed, generations, after=True, **options)
    while seconds_to(run_dir, target) == math.inf and total_seconds(run_dir) / baseline_seconds(run_dir) < budget:
        config, archive, _ = reopen_run(run_dir, {"generations": None})
        if config.generations >= most:
            archive.close()
            break
        config = replace(config, generations=min(most, config.generations + step))
        archive.set_run_config(config.to_dict(), "")
        task = load_task(config.task)
        settings = task.settings_from_dict(config.task_settings)
        task.prepare(settings)
        with make_executor("local", task_spec=config.task, task=task, workers=config.resolved_workers(),
                           timeout_s=config.timeout_s, warm_settings=settings) as executor:
            Discovery(config, task, archive, make_proposer("symbolic", seed=seed), executor,
                      Progress(config.generations, stream=open("/dev/null", "w"))).run()
        archive.close()
    return run_dir


def keep(results: Path | None, row: dict) -> None:
    """Print one finished figure and, with ``--results``, append it as a JSON line (a cut-short bench keeps it)."""
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    if results is not None:
        with results.open("a") as out:
            out.write(json.dumps(row, default=str) + "\n")


def cost(candidate: CandidateRecord, unit: str = "s") -> float:
    """A candidate's evaluation core-seconds: the processor seconds of its evaluations (worker, candidate, scorer;
    the clock seconds for a run recorded before they were counted); ``unit`` "evals": 1 per trained candidate;
    "seed-runs": the training runs it had (one per seed trained; a rung's shorter run counts as one)."""
    if unit == "evals":
        return 1.0
    if unit == "seed-runs":
        return float(len((candidate.metrics or {}).get("fitness_per_seed") or [None]))
    processor = (candidate.metrics or {}).get("cpu_seconds")
    return float(processor) if processor else float(candidate.seconds or 0.0)


def evaluated(candidates: list[CandidateRecord]) -> list[CandidateRecord]:
    """Candidates whose evaluation cost something (baselines included), in the order they finished."""
    spent = [c for c in candidates if (c.seconds or 0) > 0]
    return sorted(spent, key=lambda c: c.finished_at or math.inf)


def duplicate_share(run_dir: Path, beta: float, tolerance: float) -> tuple[float, float]:
    """The share of evaluation core-seconds, and of trained evaluations, spent on behavioural duplicates."""
    from llm2.sandbox.confined_call import call_confined

    with Archive.open(run_dir, readonly=True) as archive:
        spent = sorted(evaluated(archive.candidates()), key=lambda c: c.index)
    answers = call_confined(TASK, ENTRY, [(str(c.id), c.code) for c in spent], {"beta": beta}, timeout_s=300)
    prints = {int(a.name): tuple(a.value or ()) for a in answers}
    wasted, repeats, seen = 0.0, 0, []
    for candidate in spent:
        vector = prints.get(candidate.id, ())
        if any(same_behaviour(vector, earlier, tolerance) for earlier in seen):
            wasted, repeats = wasted + cost(candidate), repeats + 1
        elif vector:
            seen.append(vector)
    return wasted / sum(cost(c) for c in spent), repeats / len(spent)


def seconds_to(run_dir: Path, target: float, unit: str = "s", generations: int | None = None) -> float:
    """Evaluation core-seconds (``unit`` "evals": trained evaluations) until a proposal first scores ``target`` or
    more (inf: never), counting only the first ``generations`` when given. Neither grows with the machine's load:
    processor seconds, not the clock's, are counted."""
    with Archive.open(run_dir, readonly=True) as archive:
        spent = 0.0
        for candidate in evaluated(archive.candidates()):
            if generations is not None and candidate.generation > generations:
                continue
            spent += cost(candidate, unit)
            if candidate.generation > 0 and candidate.status == "ok" and (candidate.fitness or -math.inf) >= target:
                return spent
    return math.inf


def baseline_seconds(run_dir: Path) -> float:
    """The mean core-seconds of one baseline evaluation in this run: every run trains the same baselines first, so
    this is the run's own yardstick of how fast the machine was (processor seconds still grow with the load of other
    jobs on shared cores, by up to 1.6x measured)."""
    with Archive.open(run_dir, readonly=True) as archive:
        baselines = [c for c in archive.candidates() if c.generation == 0 and c.fitness is not None]
    return statistics.mean(cost(c) for c in baselines)


def final_best(run_dir: Path) -> float:
    with Archive.open(run_dir, readonly=True) as archive:
        best = archive.best(1)
    return best[0].fitness if best else -math.inf


def rung_event(run_dir: Path) -> list[dict]:
    with Archive.open(run_dir, readonly=True) as archive:
        events = [e for e in archive.run_events() if e.kind == "rung_correlations"]
    return events[-1].detail["correlations"] if events else []


def proposals_within(run_dir: Path, budget: float, unit: str = "s") -> list[CandidateRecord]:
    """The scored proposals finished within ``budget`` evaluation core-seconds (``unit`` "evals": trained
    evaluations, baselines included)."""
    within, spent = [], 0.0
    with Archive.open(run_dir, readonly=True) as archive:
        for candidate in evaluated(archive.candidates()):
            spent += cost(candidate, unit)
            if spent > budget:
                break
            if candidate.generation > 0 and candidate.fitness is not None:
                within.append(candidate)
    return within


def best_within(run_dir: Path, budget: float, unit: str = "s") -> float:
    """The best proposal's fitness among those finished within ``budget``."""
    return max((c.fitness for c in proposals_within(run_dir, budget, unit)), default=-math.inf)


def total_seconds(run_dir: Path, unit: str = "s") -> float:
    with Archive.open(run_dir, readonly=True) as archive:
        spent = evaluated(archive.candidates())
    return sum(cost(c, unit) for c in spent)


def top_clusters(run_dir: Path, radius: float, budget: float = math.inf, unit: str = "s", top: int = 20) -> int:
    """Distinct behavioural clusters among the ``top`` proposals by fitness finished within ``budget`` (leader
    clustering on the run's recorded fingerprints, in fitness order)."""
    from llm2.archive.search_tables import fingerprints
    from llm2.report.clusters import behaviour_clusters

    with Archive.open(run_dir, readonly=True) as archive:
        vectors = {f.candidate_id: f.vector for f in fingerprints(archive)}
    within = [c for c in proposals_within(run_dir, budget, unit) if vectors.get(c.id)]
    best = sorted(within, key=lambda c: (-c.fitness, c.index))[:top]
    clusters = behaviour_clusters(best, vectors, set(), radius)  # the report's clustering; it lists groups of 2+
    return clusters.fingerprinted - sum(len(group) - 1 for group in clusters.groups)


def compare_islands(args, root: Path) -> None:
    """Per search seed: the single conversation (the before/after bench's *after* run, reused when ``--out`` holds
    it), then N islands with MAP-Elites at every seed, then N islands alone; compared at the budget all arms of a
    seed reached. Each finished run is kept as it ends, so a cut-short bench still yields its figures."""
    arms = {"single": {}, "elites": {"islands": args.compare_islands, "migrate_every": args.migrate_every,
                                     "map_elites": True},
            "islands": {"islands": args.compare_islands, "migrate_every": args.migrate_every}}
    runs: dict[int, dict[str, Path]] = {seed: {} for seed in range(args.search_seeds)}
    for arm, options in arms.items():
        for seed in runs:
            label = "after" if arm == "single" else arm
            run = run_once(root, label, seed, args.generations, after=True, rungs=False, workers=args.workers,
                           **options)
            runs[seed][arm] = run
            keep(args.results, {"arm": arm, "seed": seed, "total_s": total_seconds(run),
                                "total_evals": total_seconds(run, "evals"), "best": final_best(run),
                                "clusters_all": top_clusters(run, args.cluster_radius)})
    rows = [arms_at_equal_budget(seed, by_arm, args.cluster_radius, unit) for unit in ("s", "evals")
            for seed, by_arm in runs.items()]
    for row in rows:
        keep(args.results, row)
    for unit in ("s", "evals"):
        for key in [f"{kind}_{arm}" for kind in ("best", "clusters") for arm in arms]:
            print(f"median_{key} (budget in {unit})="
                  f"{statistics.median(r[key] for r in rows if r['unit'] == unit):.4f}")


def arms_at_equal_budget(seed: int, by_arm: dict[str, Path], radius: float, unit: str) -> dict:
    """One seed's arms at the budget all of them reached, in evaluation core-seconds or trained evaluations."""
    budget = min(total_seconds(run, unit) for run in by_arm.values())
    return {"seed": seed, "unit": unit, "budget": budget,
            **{f"best_{arm}": best_within(run, budget, unit) for arm, run in by_arm.items()},
            **{f"clusters_{arm}": top_clusters(run, radius, budget, unit) for arm, run in by_arm.items()}}


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


def ratio_test(ratios: list[float]) -> str:
    """The per-seed ratios' spread and a one-sided Wilcoxon signed-rank test of their logs below 0 (after cheaper
    than before) and below log 0.5 (half or less); unit of evidence: one search seed (a "never" counts as worse)."""
    from scipy.stats import wilcoxon

    logs = [math.log(r) if r > 0 else -math.inf for r in ratios]
    finite = [x if math.isfinite(x) else 50.0 for x in logs]  # never reached: larger than any real ratio
    cheaper = wilcoxon(finite, alternative="less").pvalue if len(finite) >= 2 else math.nan
    half = wilcoxon([x - math.log(0.5) for x in finite], alternative="less").pvalue if len(finite) >= 2 else math.nan
    return (f"ratios {min(ratios):.2f}-{max(ratios):.2f} over {len(ratios)} seeds; Wilcoxon one-sided p "
            f"{cheaper:.3f} (cheaper than before), {half:.3f} (half or less)")


def before_after(args, root: Path) -> None:
    task = load_task(TASK)
    beta = task.settings_from_dict({}).beta
    rows = []
    longer = args.after_generations or args.generations
    label = "-".join(["after", *(["rungs"] if args.rungs else []), *(["norace"] if args.no_race else [])])
    for seed in range(args.search_seeds):
        before = run_once(root, "before", seed, args.generations, after=False, rungs=False, workers=args.workers)
        target = final_best(before)
        after = run_to_target(root, label, seed, args.generations, longer, target,
                              total_seconds(before) / baseline_seconds(before),
                              rungs=args.rungs, race=not args.no_race, workers=args.workers)
        dup_before = duplicate_share(before, beta, task.fingerprint_tolerance)
        dup_after = duplicate_share(after, beta, task.fingerprint_tolerance)
        row = {"seed": seed, "target": target, "dup_before": dup_before[0], "dup_after": dup_after[0],
               "dup_evals_before": dup_before[1], "dup_evals_after": dup_after[1],
               "to_target_before": seconds_to(before, target), "to_target_after": seconds_to(after, target),
               "evals_to_target_before": seconds_to(before, target, "evals"),
               "evals_to_target_after": seconds_to(after, target, "evals"),
               "seed_runs_to_target_before": seconds_to(before, target, "seed-runs"),
               "seed_runs_to_target_after": seconds_to(after, target, "seed-runs"),
               "baseline_s_before": baseline_seconds(before), "baseline_s_after": baseline_seconds(after),
               "total_before": total_seconds(before), "total_after": total_seconds(after),
               "best_after": final_best(after), "rungs": rung_event(after),
               # the after run's first --generations alone (a longer run begins with exactly that run)
               "to_target_after_default_generations": seconds_to(after, target, generations=args.generations)}
        # a longer after run counts only within the before run's whole spend: beyond it, it did not get there sooner
        if row["to_target_after"] / row["baseline_s_after"] > row["total_before"] / row["baseline_s_before"]:
            row["to_target_after"] = math.inf
        # the same ratio with each run's core-seconds in its own baseline evaluations: load-free
        row["ratio_in_baseline_units"] = ((row["to_target_after"] / row["baseline_s_after"])
                                          / (row["to_target_before"] / row["baseline_s_before"]))
        rows.append(row)
        keep(args.results, row)
    if rows:  # --search-seeds 0: the catalog's correlation alone
        before_s = statistics.median(r["to_target_before"] for r in rows)
        after_s = statistics.median(r["to_target_after"] for r in rows)
        print(f"median_to_target_s before={before_s:.0f} after={after_s:.0f} ratio_after_over_before="
              f"{after_s / before_s:.2f}")
        before_n = statistics.median(r["evals_to_target_before"] for r in rows)
        after_n = statistics.median(r["evals_to_target_after"] for r in rows)
        print(f"median_evals_to_target before={before_n:.0f} after={after_n:.0f} ratio={after_n / before_n:.2f}")
        print(f"median_ratio_in_baseline_units={statistics.median(r['ratio_in_baseline_units'] for r in rows):.2f}")
        seed_runs = [r["seed_runs_to_target_after"] / r["seed_runs_to_target_before"] for r in rows]
        print(f"median_ratio_in_seed_runs={statistics.median(seed_runs):.2f}")
        for unit, ratios in (("seed_runs", seed_runs), ("baseline_units", [r["ratio_in_baseline_units"] for r in rows])):
            print(f"{unit}: {ratio_test(ratios)}")
        print(f"dup_share_max before={max(r['dup_before'] for r in rows):.1%} "
              f"after={max(r['dup_after'] for r in rows):.1%}")
    if args.catalog:
        catalog_correlation(args.workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-seeds", type=int, default=5)
    parser.add_argument("--generations", type=int, default=DiscoveryConfig().generations)
    parser.add_argument("--rungs", action="store_true", help="after: also successive halving over the task's rungs")
    parser.add_argument("--no-race", action="store_true", help="after: without seed racing (the default races)")
    parser.add_argument("--after-generations", type=int, default=None, metavar="G",
                        help="the after run may go on for G generations (default: --generations); it counts only "
                        "within the before run's whole spend of core-seconds")
    parser.add_argument("--catalog", action="store_true", help="also the catalog's rung-to-full correlation")
    parser.add_argument("--compare-islands", type=int, default=0, metavar="N",
                        help="instead: a single conversation against N islands, and N islands with MAP-Elites, "
                        "at equal evaluation core-seconds")
    parser.add_argument("--migrate-every", type=int, default=DiscoveryConfig().migrate_every)
    parser.add_argument("--cluster-radius", type=float, default=0.1,
                        help="fingerprint distance within which two of the top 20 count as one cluster")
    parser.add_argument("--workers", type=int, default=2, help="evaluation workers per run (one run at a time)")
    parser.add_argument("--out", type=Path, default=None,
                        help="keep the runs here (default: a temporary folder); runs finished there are reused")
    parser.add_argument("--results", type=Path, default=None, help="append each finished figure as a JSON line")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llm2-bench-search-") as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        if args.compare_islands:
            compare_islands(args, root)
        else:
            before_after(args, root)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
