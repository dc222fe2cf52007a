"""Cost of the preference-synthetic world: seconds to build one, seconds per evaluation once it is cached.

    python bench/world_cost.py [--evaluations 3] [--objective dpo]

Builds a world from scratch in a temporary cache directory (the timing a fresh machine pays once), then times
train + score of one objective at the default setting, one seed per evaluation, in this warm process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=3)
    parser.add_argument("--objective", default="dpo")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        os.environ["LLM2_CACHE_DIR"] = cache
        import torch  # noqa: F401 - import cost is paid once per warm worker, not per evaluation

        from llm2.objectives import OBJECTIVES
        from llm2.tasks import get_task

        task = get_task("preference-synthetic")
        start = time.perf_counter()
        task.prepare(task.default_setting)
        build = time.perf_counter() - start
        print(f"world build: {build:.1f} s")

        reference = task.reference_metrics(task.default_setting)
        print(f"reference: reward {reference.fitness:.3f}")
        train_times, score_times = [], []
        for seed in range(args.evaluations):
            setting = task.default_setting.replace(seed=seed)
            start = time.perf_counter()
            output = task.train(OBJECTIVES[args.objective], setting)
            middle = time.perf_counter()
            metrics = task.score(output, setting)
            end = time.perf_counter()
            train_times.append(middle - start)
            score_times.append(end - middle)
            print(f"seed {seed}: {args.objective} reward {metrics.fitness:.3f} kl {metrics.kl:.2f}"
                  f"  train {middle - start:.2f} s ({output.steps} steps)  score {end - middle:.2f} s")
        total = [t + s for t, s in zip(train_times, score_times)]
        print(f"train {statistics.median(train_times):.2f} s, score {statistics.median(score_times):.2f} s (medians)")
        print(f"build_seconds={build:.1f} seconds_per_evaluation={statistics.median(total):.2f}")


if __name__ == "__main__":
    main()
