"""The merging-synthetic task and its offline proposer, measured.

    python bench/merging.py [--worlds 0,1,2] [--candidates 60] [--sections build,lambda,table,timing,search]

- build: seconds to build a world from scratch (seed model, all eight experts, held-out problems) in a
  temporary cache, on one torch thread.
- lambda: task arithmetic's λ chosen as Ilharco et al. do, on validation problems from the training side of the
  split (never the scored ones), world 0, the default experts.
- table: every baseline, the seed and the single experts on the default setting of each world (mean ± std over
  worlds; the DARE methods also over three merge seeds in world 0); whether task arithmetic and TIES beat the seed
  and every single expert in every world; which pairs of baselines are more than three standard deviations apart.
- timing: seconds per candidate in this process (contract checks, merge, scoring) and candidates per hour.
- search: the offline proposer for --candidates candidates on world 0's default setting (evaluate_trusted, in
  process), then the held-out transfer check of its best rule against task arithmetic on experts never seen
  during the search: every three of the five other skills in each world, and the default skills' experts from
  another fine-tuning seed; win rate with its 95 % Wilson interval and a paired test.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time


def _setting(settings, seed=0):
    from llm2.task_api.base import EvalSetting

    return EvalSetting(settings, seed=seed)


def _fitness(task, code, settings, seed=0) -> float:
    from llm2.trusted import evaluate_trusted

    result = evaluate_trusted(task, code, _setting(settings, seed))
    if result.status != "ok":
        raise SystemExit(f"evaluation failed: {result.error}")
    return result.fitness


def section_build() -> None:
    from llm2.tasks.merging_synthetic import world
    from llm2.tasks.merging_synthetic.skills import SKILL_NAMES

    with tempfile.TemporaryDirectory() as cache:
        previous = os.environ.get("LLM2_CACHE_DIR")
        os.environ["LLM2_CACHE_DIR"] = cache
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            world.prepare_world(0, ("copy", "reverse", "sort"), 0)
            default = (time.perf_counter() - wall, time.process_time() - cpu)
            world.prepare_world(0, SKILL_NAMES, 0)
            full = (time.perf_counter() - wall, time.process_time() - cpu)
        finally:
            if previous is None:
                del os.environ["LLM2_CACHE_DIR"]
            else:
                os.environ["LLM2_CACHE_DIR"] = previous
    print(f"build, default setting (seed + 3 experts): {default[0]:.1f} s wall, {default[1]:.1f} s CPU")
    print(f"build, whole world (seed + 8 experts):     {full[0]:.1f} s wall, {full[1]:.1f} s CPU")


def section_lambda() -> float:
    import torch

    from llm2.sandbox.loader import load_function
    from llm2.tasks.merging_synthetic import skills as skillset
    from llm2.tasks.merging_synthetic.model import model_from_state, solved
    from llm2.tasks.merging_synthetic.task import MergingSyntheticSettings, MergingSyntheticTask, merge_models

    task, settings = MergingSyntheticTask(), MergingSyntheticSettings()
    task.prepare(settings)
    data = task.training_data(settings)
    generator = torch.Generator().manual_seed(12345)
    validation = {s: skillset.problems(skillset.skill_index(s), 1024, generator, settings.world_seed, heldout=False)
                  for s in settings.experts}
    rows = []
    for lam in [round(0.1 * i, 1) for i in range(1, 11)]:
        code = f"def merge(name, base, experts):\n    return base + {lam} * sum(e - base for e in experts)\n"
        model = model_from_state(merge_models(load_function(code, task.contract), data, 0).weights)
        accuracy = statistics.mean(float(solved(model, p.tokens, p.targets).float().mean())
                                   for p in validation.values())
        rows.append((accuracy, lam))
        print(f"  λ = {lam:.1f}: validation exact match {accuracy:.4f}")
    best = max(rows)[1]
    print(f"task arithmetic λ chosen on validation problems: {best}")
    return best


def section_table(worlds: list[int]) -> None:
    from llm2.stats import mean_std
    from llm2.task_api.base import TrainOutput
    from llm2.tasks.merging.baselines import BASELINES
    from llm2.tasks.merging_synthetic.task import MergingSyntheticSettings, MergingSyntheticTask

    task = MergingSyntheticTask()
    rows: dict[str, list[float]] = {}
    merge_seed_rows: dict[str, list[float]] = {}
    for world_seed in worlds:
        settings = MergingSyntheticSettings(world_seed=world_seed)
        task.prepare(settings)
        scorer = task.scorer(settings)
        rows.setdefault("seed model", []).append(scorer.reference_metrics().fitness)
        data = task.training_data(settings)
        for skill, expert in zip(data.skills, data.experts):
            rows.setdefault(f"expert {skill} alone", []).append(scorer.score(TrainOutput(expert, [], 0)).fitness)
        for name, baseline in BASELINES.items():
            rows.setdefault(name, []).append(_fitness(task, baseline.code, settings))
            if name.startswith("dare") and world_seed == worlds[0]:
                merge_seed_rows[name] = [_fitness(task, baseline.code, settings, seed) for seed in (0, 1, 2)]
    print(f"\nbaselines on the default setting (3 experts: copy, reverse, sort), worlds {worlds}, merge seed 0:")
    print(f"  {'':22s} {'mean':>7s} {'std':>7s}   per world")
    for name, values in rows.items():
        mean, std = mean_std(values)
        print(f"  {name:22s} {mean:7.4f} {std:7.4f}   {', '.join(f'{v:.4f}' for v in values)}")
    for name, values in merge_seed_rows.items():
        mean, std = mean_std(values)
        print(f"  {name + ' (3 merge seeds, world ' + str(worlds[0]) + ')':40s} {mean:.4f} ± {std:.4f}")
    singles = [k for k in rows if k.startswith("expert") or k == "seed model"]
    for method in ("task_arithmetic", "ties"):
        beaten = all(rows[method][w] > max(rows[k][w] for k in singles) for w in range(len(worlds)))
        print(f"{method} beats the seed and every single expert in every world: {beaten}")
    names = list(BASELINES)
    apart = []
    for a, b in itertools.combinations(names, 2):
        (ma, sa), (mb, sb) = mean_std(rows[a]), mean_std(rows[b])
        if abs(ma - mb) > 3 * max(sa, sb):
            apart.append(f"{a} vs {b} ({ma - mb:+.3f}, 3σ = {3 * max(sa, sb):.3f})")
    print(f"pairs more than 3 world-seed standard deviations apart ({len(apart)} of "
          f"{len(names) * (len(names) - 1) // 2}):")
    for line in apart:
        print(f"  {line}")


def section_timing(repeats: int = 15) -> None:
    from llm2.trusted import evaluate_trusted
    from llm2.tasks.merging.baselines import BASELINES
    from llm2.tasks.merging_synthetic.task import MergingSyntheticSettings, MergingSyntheticTask

    task, settings = MergingSyntheticTask(), MergingSyntheticSettings()
    task.prepare(settings)
    evaluate_trusted(task, BASELINES["task_arithmetic"].code, _setting(settings))  # loads data and problems
    for name in ("task_arithmetic", "ties"):
        seconds = []
        for _ in range(repeats):
            cpu = time.process_time()
            evaluate_trusted(task, BASELINES[name].code, _setting(settings))
            seconds.append(time.process_time() - cpu)
        median = statistics.median(seconds)
        print(f"{name}: {median:.3f} s CPU per candidate in process (median of {repeats}): "
              f"{3600 / median:,.0f} candidates per hour per core")


def section_search(candidates: int, worlds: list[int]) -> None:
    from llm2.trusted import evaluate_trusted
    from llm2.proposers.base import ProposalRequest, ScoredCandidate
    from llm2.stats import evidence_phrase, settings_evidence
    from llm2.tasks.merging.baselines import BASELINES
    from llm2.tasks.merging.proposer import MergingOfflineProposer
    from llm2.tasks.merging_synthetic.skills import SKILL_NAMES
    from llm2.tasks.merging_synthetic.task import MergingSyntheticSettings, MergingSyntheticTask

    task, settings = MergingSyntheticTask(), MergingSyntheticSettings()
    task.prepare(settings)
    history = [ScoredCandidate(n, b.code, _fitness(task, b.code, settings), "ok") for n, b in BASELINES.items()]
    reference = history[[c.name for c in history].index("task_arithmetic")].fitness
    proposer = MergingOfflineProposer(seed=0)
    start = time.perf_counter()
    for index in range(candidates):
        reply = json.loads(proposer.propose(ProposalRequest((), tuple(history), 1.0, index)).text)
        result = evaluate_trusted(task, reply["code"], _setting(settings))
        history.append(ScoredCandidate(reply["name"], reply["code"], result.fitness, result.status, reply["thought"]))
    elapsed = time.perf_counter() - start
    found = [c for c in history[len(BASELINES):] if c.fitness is not None]
    best = max(found, key=lambda c: c.fitness)
    better = sum(c.fitness > reference for c in found)
    print(f"\noffline proposer, {candidates} candidates on world {settings.world_seed} in {elapsed:.0f} s: "
          f"{len(found)} scored, {better} above task_arithmetic ({reference:.4f}); best {best.name} "
          f"{best.fitness:.4f} ({best.fitness - reference:+.4f})")
    print(f"  its thought: {best.thought}")

    unseen = [s for s in SKILL_NAMES if s not in settings.experts]
    heldout = [MergingSyntheticSettings(experts=group, world_seed=w)
               for w in worlds for group in itertools.combinations(unseen, 3)]
    heldout += [MergingSyntheticSettings(expert_seed=1, world_seed=w) for w in worlds]
    ours, theirs = [], []
    for held in heldout:
        task.prepare(held)
        ours.append(_fitness(task, best.code, held))
        theirs.append(_fitness(task, BASELINES["task_arithmetic"].code, held))
    evidence = settings_evidence([[x] for x in ours], [[y] for y in theirs])  # the setting is the unit
    print(f"held-out transfer of {best.name} vs task_arithmetic on {len(ours)} settings with unseen experts "
          f"(every 3 of {', '.join(unseen)} in worlds {worlds}; default skills with fine-tuning seed 1):")
    print(f"  wins {evidence.wins} of {evidence.settings} settings, {evidence_phrase(evidence, digits=4)}")
    print(f"  mean fitness: {best.name} {statistics.mean(ours):.4f}, task_arithmetic {statistics.mean(theirs):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", default="0,1,2")
    parser.add_argument("--candidates", type=int, default=60)
    parser.add_argument("--sections", default="build,lambda,table,timing,search")
    args = parser.parse_args()
    worlds = [int(w) for w in args.worlds.split(",")]
    sections = args.sections.split(",")
    import torch

    torch.set_num_threads(1)
    if "build" in sections:
        section_build()
    if "lambda" in sections:
        section_lambda()
    if "table" in sections:
        section_table(worlds)
    if "timing" in sections:
        section_timing()
    if "search" in sections:
        section_search(args.candidates, worlds)


if __name__ == "__main__":
    main()
