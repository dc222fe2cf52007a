"""The runs of dpo behind its reference frontier, over the cores: each (training seed, β multiple) run is independent
and single-threaded, so worker processes give exactly the numbers of one run after another.

Trusted code only: the catalog's dpo, in processes of the trusted scorer's own, started as
``python -m llm2.tasks.preference_synthetic.frontier_runs`` (not through multiprocessing, whose spawned workers
import the caller's main module again: a user's script without a ``__main__`` guard would run twice). The runs go
in and the points come back pickled over the worker's pipes. This module imports no more than a run needs (not
scipy), since each worker process imports it afresh.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

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
    shares = [which[i::workers] for i in range(workers)]  # the runs take about as long as one another
    processes = [_start(runs, share) for share in shares]
    answers = [_answer(process) for process in processes]
    points: list[Points] = [([], [])] * len(which)
    for i, answer in enumerate(answers):
        points[i::workers] = answer
    return points


def _start(runs: DpoRuns, share: list[tuple[int, float]]) -> subprocess.Popen:
    import llm2

    source = str(Path(llm2.__file__).resolve().parents[1])  # this llm2, also when it is not installed
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "PYTHONPATH": os.pathsep.join(filter(None, (source, os.environ.get("PYTHONPATH"))))}
    process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=environment)
    assert process.stdin is not None
    process.stdin.write(pickle.dumps((runs, share)))  # the worker reads all of it before it starts
    process.stdin.close()
    process.stdin = None  # written and closed: communicate() only reads
    return process


def _answer(process: subprocess.Popen) -> list[Points]:
    output, errors = process.communicate()
    if process.returncode != 0:
        last = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise RuntimeError(f"a worker tracing dpo's frontier failed (exit {process.returncode}): {last[0]}")
    return pickle.loads(output)  # our own trusted worker's answer


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _serve() -> None:
    """A worker: the runs from stdin, their points to stdout."""
    runs, share = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps([runs.run(seed, multiple) for seed, multiple in share]))


if __name__ == "__main__":
    _serve()
