"""Cost of the preference-synthetic world: seconds to build one, seconds per evaluation once it is cached.

    python bench/world_cost.py [--evaluations 3] [--objective dpo] [--budget 1.0]

Builds a world from scratch in a temporary cache directory (what a fresh machine pays once, in the trusted main
process): the whole world (hidden generating process, reference model, gold reward, pairs, held-out prompts) and
the training file a worker loads. Then, in this one warm process, as a worker and the scorer would: loading the
training data, making the scorer (the judge's tolerance, the untrained reference's scores), and ``--evaluations``
evaluations of one catalog loss at the default setting, one training seed each, timing train and score apart.
Prints the fitness (the judge, by default), the gold reward and the judge of each, then medians; the last line
compares the build with one evaluation (how many evaluations one build costs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=3)
    parser.add_argument("--objective", default="dpo")
    parser.add_argument("--budget", type=float, default=1.0, help="share of the full training budget")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        os.environ["LLM2_CACHE_DIR"] = cache  # before llm2 is imported: nothing may reach the real cache
        import torch

        from llm2.tasks import load_task
        from llm2.task_api.base import EvalSetting
        from llm2.tasks.preference.catalog import OBJECTIVES
        from llm2.tasks.preference_synthetic.world import training_path, world_path

        torch.set_num_threads(1)  # as a worker runs
        task = load_task("preference-synthetic")
        settings = task.parse_settings({"fitness": "judge"})  # measured on the judge: no dpo frontier traced
        start = time.perf_counter()
        task.prepare(settings)
        build = time.perf_counter() - start
        sizes = {name: Path(path).stat().st_size / 2**20 for name, path in (
            ("world", world_path(task.world_config, settings.world_seed)),
            ("training", training_path(task.world_config, settings.world_seed, settings.label_noise)))}
        print(f"world build: {build:.1f} s (world file {sizes['world']:.1f} MiB, "
              f"training file {sizes['training']:.1f} MiB)")

        start = time.perf_counter()
        data = task.training_data(settings)  # a worker's one-time load and warm-up (torch.optim's first import)
        task.warm_up(settings, data)
        load = time.perf_counter() - start
        start = time.perf_counter()
        scorer = task.scorer(settings)
        reference = scorer.reference_metrics()  # the scorer's one-time set-up
        scorer_setup = time.perf_counter() - start
        print(f"training data load: {load:.2f} s; scorer set-up (world, judge tolerance, reference scores): "
              f"{scorer_setup:.2f} s")
        print(f"reference (untrained): fitness {reference.fitness:.4f} gold reward "
              f"{reference.values['gold_reward']:.4f} judge {reference.values['judge']:.4f} "
              f"naturalness {reference.values['naturalness']:.3f}  (fitness = {settings.fitness})")

        fn = OBJECTIVES[args.objective].fn
        train_times, score_times = [], []
        for seed in range(args.evaluations):
            setting = EvalSetting(settings, seed, args.budget)
            start = time.perf_counter()
            output = task.train(fn, data, setting)
            middle = time.perf_counter()
            metrics = scorer.score(output)
            end = time.perf_counter()
            train_times.append(middle - start)
            score_times.append(end - middle)
            values = metrics.values
            print(f"seed {seed}: {args.objective} fitness {metrics.fitness:.4f} gold reward "
                  f"{values['gold_reward']:.4f} judge {values['judge']:.4f} kl {values['kl']:.2f}"
                  f"  train {middle - start:.2f} s ({output.steps} steps)  score {end - middle:.2f} s")
        total = [t + s for t, s in zip(train_times, score_times)]
        print(f"train {statistics.median(train_times):.2f} s, score {statistics.median(score_times):.2f} s "
              f"(medians of {args.evaluations}, budget {args.budget:g})")
        print(f"cores={os.cpu_count()} load_1min={os.getloadavg()[0]:.2f}")
        print(f"build_seconds={build:.1f} seconds_per_evaluation={statistics.median(total):.2f} "
              f"build_over_evaluation={build / statistics.median(total):.1f}")


if __name__ == "__main__":
    main()
