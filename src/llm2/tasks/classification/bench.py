"""Measure the classification task's baselines: held-out accuracy per label noise (mean ± std over training seeds)
and the seconds one evaluation takes on one core.

    python -m llm2.tasks.classification.bench [--noise 0,0.2,0.4] [--seeds 3] [--data-seed 0]

Trusted code only (the catalog's own baselines), run in-process with ``evaluate_trusted``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from llm2.trusted import evaluate_trusted
from llm2.task_api.base import EvalSetting
from llm2.tasks.classification.settings import ClassificationSettings
from llm2.tasks.classification.task import ClassificationTask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", default="0,0.2,0.4")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-seed", type=int, default=0)
    args = parser.parse_args()
    task = ClassificationTask()
    noises = [float(n) for n in args.noise.split(",")]
    rows: dict[str, list[str]] = {name: [] for name in task.baselines}
    seconds: list[tuple[float, float]] = []
    for noise in noises:
        settings = ClassificationSettings(label_noise=noise, data_seed=args.data_seed)
        evaluate_trusted(task, task.baselines["cross_entropy"].code, EvalSetting(settings))  # cache, imports
        for name, baseline in task.baselines.items():
            accuracies = []
            for seed in range(args.seeds):
                wall, cpu = time.perf_counter(), time.process_time()
                result = evaluate_trusted(task, baseline.code, EvalSetting(settings, seed=seed))
                seconds.append((time.perf_counter() - wall, time.process_time() - cpu))
                if result.status != "ok":
                    raise SystemExit(f"{name} at noise {noise:g}, seed {seed}: {result.error}")
                accuracies.append(result.fitness)
            rows[name].append(f"{statistics.mean(accuracies):.3f} ± {statistics.stdev(accuracies):.3f}"
                              if len(accuracies) > 1 else f"{accuracies[0]:.3f}")
    print(f"held-out accuracy (clean test labels), mean ± std over {args.seeds} training seeds, "
          f"data seed {args.data_seed}")
    print("| loss | " + " | ".join(f"noise {n:g}" for n in noises) + " |")
    print("|---|" + "---|" * len(noises))
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"seconds per evaluation (one torch thread): wall median {statistics.median(s[0] for s in seconds):.2f}, "
          f"CPU median {statistics.median(s[1] for s in seconds):.2f}, CPU max {max(s[1] for s in seconds):.2f}")


if __name__ == "__main__":
    main()
