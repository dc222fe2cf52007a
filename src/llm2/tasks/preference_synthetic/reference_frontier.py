"""dpo's frontier for the ``frontier-gap`` fitness: the best judge score dpo reaches at each KL, over its training
budget and β, traced once per setting and cached on disk like the world.

For each of ``frontier_seeds`` training seeds and each β multiple, dpo (the catalog's trusted function, never a
candidate's) is trained once to the largest budget and its weights are scored at every budget on the way: a run
stopped at budget b is exactly the first b of a longer one (same batches, same dropout masks, a constant learning
rate), so one run gives every budget's point. Each seed's points and the untrained start make one upper envelope
(``llm2.frontier.Envelope``: linear between points, flat past the dearest). A candidate's gap is its judge minus
the mean of the seeds' envelopes at its KL; the spread of the seeds' envelopes there is the frontier's own noise.
Everything here runs in the trusted scorer's process.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from llm2.frontier import Envelope, Point
from llm2.task_api import cache, world_secret
from llm2.task_api.base import EvalSetting
from llm2.tasks.preference_synthetic.config import PreferenceSettings, TrainConfig
from llm2.tasks.preference_synthetic.score import score_weights
from llm2.tasks.preference_synthetic.train import total_steps, train_policy
from llm2.tasks.preference_synthetic.world import TrainingWorld, World

VERSION = 1  # bump when the tracing changes, so stale frontiers are not reused


@dataclass(frozen=True)
class FrontierGap:
    gap: float  # the judge minus the frontier at the same KL
    frontier: float  # the mean over seeds of dpo's frontier at that KL
    noise: float  # the standard deviation over seeds of dpo's frontier at that KL


@dataclass(frozen=True)
class ReferenceFrontier:
    full: tuple[Envelope, ...]  # one per seed, scored on all held-out prompts
    quick: tuple[Envelope, ...]  # the same weights scored on the quick prompts (the cascade's probe)

    def gap(self, kl: float, judge: float, quick: bool = False) -> FrontierGap:
        # the untrained start (KL 0) is every envelope's first point; a KL estimate a hair below 0 sits there
        at = [e.gain_at(max(kl, e.points[0].cost)) for e in (self.quick if quick else self.full)]
        frontier = statistics.fmean(at)
        return FrontierGap(judge - frontier, frontier, statistics.stdev(at) if len(at) > 1 else 0.0)

    @classmethod
    def from_state(cls, state: dict) -> "ReferenceFrontier":
        def envelopes(points: torch.Tensor) -> tuple[Envelope, ...]:
            return tuple(Envelope.of([Point(float(kl), float(judge)) for kl, judge in seed.tolist()])
                         for seed in points)
        return cls(envelopes(state["full"]), envelopes(state["quick"]))


def frontier_path(world: World, settings: PreferenceSettings, config: TrainConfig) -> Path:
    """Keyed by the world (its secret too), the setting's label noise and β, and every training knob (a new lr is a new frontier)."""
    key = json.dumps({"world": world.config.key(), "seed": world.seed, "secret": world_secret.fingerprint(),
                      "label_noise": settings.label_noise,
                      "beta": settings.beta, "train": asdict(config), "version": VERSION}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache.cache_dir() / f"preference-synthetic-frontier-{digest}.pt"


def load_frontier(world: World, settings: PreferenceSettings, config: TrainConfig,
                  tolerance: int) -> ReferenceFrontier:
    path = frontier_path(world, settings, config)
    cache.build_once(path, lambda: trace_frontier(world, settings, config, tolerance))
    return ReferenceFrontier.from_state(cache.load(path))


def trace_frontier(world: World, settings: PreferenceSettings, config: TrainConfig, tolerance: int) -> dict:
    """{"full", "quick"}: [seeds, points, 2] tensors of (KL, judge), the untrained start first."""
    from llm2.tasks.preference.losses import dpo  # the reference's trusted function, never candidate code

    training = TrainingWorld(world.config, world.seed, settings.label_noise, world.reference_weights,
                             world.pairs(settings.label_noise))
    steps = sorted({total_steps(len(training.pairs), b, config) for b in config.frontier_budgets})
    start = [(0.0, score_weights(world, world.reference_weights, config, tolerance, quick=q).judge)
             for q in (False, True)]
    full, quick = [], []
    for seed in range(config.frontier_seeds):
        points: tuple[list, list] = ([start[0]], [start[1]])
        for multiple in config.frontier_betas:
            setting = EvalSetting(replace(settings, beta=settings.beta * multiple), seed,
                                  budget=max(config.frontier_budgets))
            kept: dict = dict.fromkeys(steps)
            train_policy(dpo, training, setting, config, probe_fraction=1.0, kept=kept)
            for weights in kept.values():
                if weights is None:  # the run stopped early (diverged): its later budgets are not points
                    continue
                for index, is_quick in enumerate((False, True)):
                    scores = score_weights(world, weights, config, tolerance, quick=is_quick)
                    points[index].append((scores.kl, scores.judge))
        full.append(points[0]), quick.append(points[1])
    width = max(len(p) for p in full)  # every seed has the same points unless a run stopped early: pad with start
    pad = (lambda rows: [row + [row[0]] * (width - len(row)) for row in rows])  # noqa: E731
    return {"full": torch.tensor(pad(full)), "quick": torch.tensor(pad(quick))}
