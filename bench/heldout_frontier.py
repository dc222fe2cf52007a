"""The held-out frontier verdict of ``llm2 heldout`` for catalog losses on preference-synthetic, computed in this
process: the same held-out settings (``Task.heldout_settings``), the same dpo grid (``llm2.frontier.frontier_grid``
over the task's ``trade_off`` knobs, plus the untrained start), the same verdict (``llm2.frontier.frontier_verdict``
on a ``PointIndex`` of the points: no placement past dpo's dearest grid point). What differs is only the cost:

- training runs here, not in the sandbox (trusted catalog code, as the task's tests train it), and
- dpo is trained once per β to the grid's largest budget and its weights kept at every grid budget on the way: a
  run stopped at budget b is exactly the first b of a longer one (same batches and dropout masks, a constant
  learning rate), so the grid's points are those ``llm2 heldout`` would measure, for 2 of the 3.5 budgets of training.

    python bench/heldout_frontier.py [--losses hinge,ipo,...] [--seeds 1] [--knob label_noise]
                                     [--out bench-results/heldout_frontier]

``--knob NAME`` (repeatable) keeps only the held-out settings that differ from the discovery's in that knob (e.g.
``--knob label_noise``: 2 of the 8, on the discovery's world, with the smallest grid): the cheapest honest version
on a busy machine.

Writes ``gaps.json`` ({loss: the verdict's mean gap}, with each verdict's words under "_verdicts"), which
``bench/fitness.py --verdicts`` reads.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from llm2.frontier import frontier_grid, frontier_verdict, start_setting
from llm2.points import FRONTIER_SUITE, HELDOUT_SUITE, PointIndex
from llm2.task_api.base import EvalSetting, TrainOutput
from llm2.tasks.preference.catalog import OBJECTIVES
from llm2.tasks.preference_synthetic.config import PreferenceSettings
from llm2.tasks.preference_synthetic.task import PreferenceSyntheticTask
from llm2.tasks.preference_synthetic.train import total_steps, train_policy

LOSSES = "hinge,ipo,kto_pair,discopop,aql,aqfl,padll,dbaql,pfl,cell"
_ids = itertools.count()


@dataclass(frozen=True)
class Evaluation:
    """What ``PointIndex`` and the verdict read of an archive evaluation row."""

    candidate_name: str
    suite: str
    setting: dict
    fitness: float
    metrics: dict = field(default_factory=dict)
    status: str = "ok"
    id: int = field(default_factory=lambda: next(_ids))

    def value(self, key: str) -> float | None:
        return self.metrics.get(key)


def record(name: str, suite: str, setting: EvalSetting, metrics) -> Evaluation:
    return Evaluation(name, suite, setting.label(), metrics.fitness, dict(metrics.values))


def dpo_grid(task: PreferenceSyntheticTask, points: list[EvalSetting]) -> list[Evaluation]:
    """dpo at every grid point of every held-out point, one run per (setting without budget) to its largest
    budget, and the untrained starts."""
    dpo = OBJECTIVES["dpo"]
    runs: dict[str, tuple[EvalSetting, set[float]]] = {}
    for point in points:
        for grid_point in frontier_grid(point, task.trade_off):
            key = json.dumps({**grid_point.label(), "budget": None}, sort_keys=True)
            runs.setdefault(key, (grid_point, set()))[1].add(grid_point.budget)
    found, starts = [], {}
    for grid_point, budgets in runs.values():
        data = task.training_data(grid_point.task)
        steps = {total_steps(len(data.pairs), b, task.train_config): b for b in budgets}
        kept: dict = dict.fromkeys(steps)
        train_policy(dpo, data, grid_point.replace(budget=max(budgets)), task.train_config, 1.0, kept=kept)
        scorer = task.scorer(grid_point.task)
        for step, weights in kept.items():
            metrics = scorer.score(TrainOutput(weights, [], step))
            found.append(record("dpo", FRONTIER_SUITE, grid_point.replace(budget=steps[step]), metrics))
        start = start_setting(grid_point)
        starts.setdefault(json.dumps(start.label(), sort_keys=True),
                          record("dpo", FRONTIER_SUITE, start, scorer.reference_metrics()))
    return found + list(starts.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--losses", default=LOSSES)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--knob", action="append", default=[], help="only held-out settings that differ in it")
    parser.add_argument("--out", type=Path, default=Path("bench-results/heldout_frontier"))
    args = parser.parse_args()
    task = PreferenceSyntheticTask()
    base = PreferenceSettings()
    settings = [s for s in task.heldout_settings(base)
                if not args.knob or any(getattr(s, k) != getattr(base, k) for k in args.knob)]
    for setting in settings:
        task.prepare(setting)
    points = [EvalSetting(s, seed) for s in settings for seed in range(args.seeds)]
    start = time.process_time()
    records = dpo_grid(task, points)
    grid_seconds = time.process_time() - start
    print(f"dpo's grid: {len(records)} points, {grid_seconds:.0f} core-seconds", flush=True)
    losses = [n for n in args.losses.split(",") if n]
    for name in losses:  # dpo's own held-out points are grid points already
        for point in points:
            output = task.train(OBJECTIVES[name], task.training_data(point.task), point)
            records.append(record(name, HELDOUT_SUITE, point, task.scorer(point.task).score(output)))
    index = PointIndex(records)
    gaps, words = {}, {}
    for name in losses:
        verdict = frontier_verdict(index, task.trade_off, name, "dpo", "fitness", "judge score")
        print(f"{name}: {verdict.text}", flush=True)
        words[name] = verdict.text
        if verdict.evidence is not None:
            gaps[name] = verdict.evidence.mean_diff
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gaps.json").write_text(json.dumps({**gaps, "_verdicts": words}, indent=2), encoding="utf-8")
    print(f"in all {time.process_time() - start:.0f} core-seconds")


if __name__ == "__main__":
    main()
