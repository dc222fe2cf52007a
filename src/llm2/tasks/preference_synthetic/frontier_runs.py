"""The runs of dpo behind its reference frontier, over the cores: each (training seed, β multiple) run is independent
and single-threaded, so worker processes give exactly the numbers of one run after another.

Trusted code only: the catalog's dpo, in processes of the trusted scorer's own. This module imports no more than a
run needs (not scipy), since each worker process imports it afresh.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

from llm2.task_api.base import EvalSetting
from llm2.tasks.preference_synthetic.config import PreferenceSettings, TrainConfig
from llm2.tasks.preference_synthetic.score import score_weights
from llm2.tasks.preference_synthetic.train import total_steps, train_policy
from llm2.tasks.preference_synthetic.world import TrainingWorld, World

Points = tuple[list[tuple[float, float]], list[tuple[float, float]]]  # (KL, judge) on all prompts, on the quick ones


@dataclass(frozen=True)
class DpoRuns:
    """What one run of dpo needs: sent once to each worker process."""
    world: World
    training: TrainingWorld
    settings: PreferenceSettings
    config: TrainConfig
    tolerance: int

    def run(self, seed: int, multiple: float) -> Points:
        """dpo at β × ``multiple`` on training seed ``seed``, scored at each frontier budget it reaches."""
        from llm2.tasks.preference.losses import dpo  # the reference's trusted function, never candidate code

        config = self.config
        steps = sorted({total_steps(len(self.training.pairs), b, config) for b in config.frontier_budgets})
        setting = EvalSetting(replace(self.settings, beta=self.settings.beta * multiple), seed,
                              budget=max(config.frontier_budgets))
        kept: dict = dict.fromkeys(steps)
        train_policy(dpo, self.training, setting, config, probe_fraction=1.0, kept=kept)
        points: Points = ([], [])
        for weights in kept.values():
            if weights is None:  # the run stopped early (diverged): its later budgets are not points
                continue
            for index, is_quick in enumerate((False, True)):
                scores = score_weights(self.world, weights, config, self.tolerance, quick=is_quick)
                points[index].append((scores.kl, scores.judge))
        return points


def run_dpo(runs: DpoRuns, which: list[tuple[int, float]], workers: int | None = None) -> list[Points]:
    """Each (seed, multiple)'s points, in the order given; over ``workers`` processes (default: the cores this
    process may use), here when that is one."""
    workers = min(len(which), workers or available_cores())
    if workers <= 1:
        return [runs.run(seed, multiple) for seed, multiple in which]
    # spawned, not forked: a fork copies whatever locks the caller's other threads hold at that moment
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_keep, initargs=(runs,)) as pool:
        return list(pool.map(_run_kept, *zip(*which)))


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_kept: DpoRuns | None = None  # a worker process's runs, from its initializer


def _keep(runs: DpoRuns) -> None:
    global _kept
    _kept = runs


def _run_kept(seed: int, multiple: float) -> Points:
    assert _kept is not None
    return _kept.run(seed, multiple)
