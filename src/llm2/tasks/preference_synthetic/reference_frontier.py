"""dpo's frontier for the ``frontier-gap`` fitness: the best judge score dpo reaches at each KL, over its training
budget and β, traced once per setting and cached on disk like the world.

For each of ``frontier_seeds`` training seeds and each β multiple, dpo (the catalog's trusted function, never a
candidate's) is trained once to the largest budget and its weights are scored at every budget on the way: a run
stopped at budget b is exactly the first b of a longer one (same batches, same dropout masks, a constant learning
rate), so one run gives every budget's point. Each seed's points and the untrained start make one upper envelope
(``llm2.frontier.Envelope``: linear between points, flat past the dearest). A candidate's gap is its judge minus
the mean of the seeds' envelopes at its KL; the frontier's own noise is the seeds' spread there together with one
point's scatter about its neighbours.
Everything here runs in the trusted scorer's process.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from llm2.frontier import Envelope, Point
from llm2.task_api import cache, world_secret
from llm2.task_api.base import EvalSetting
from llm2.tasks.preference_synthetic.config import PreferenceSettings, TrainConfig
from llm2.tasks.preference_synthetic.score import score_weights
from llm2.tasks.preference_synthetic.frontier_runs import DpoRuns, run_dpo
from llm2.tasks.preference_synthetic.world import TrainingWorld, World

VERSION = 1  # bump when the tracing changes, so stale frontiers are not reused


@dataclass(frozen=True)
class FrontierGap:
    gap: float  # the judge minus the frontier at the same KL
    frontier: float  # the mean over seeds of dpo's frontier at that KL
    noise: float  # how far one run of dpo itself lands from that mean: seeds' spread and one point's scatter


@dataclass(frozen=True)
class ReferenceFrontier:
    full: tuple[Envelope, ...]  # one per seed, scored on all held-out prompts
    quick: tuple[Envelope, ...]  # the same weights scored on the quick prompts (the cascade's probe)

    def gap(self, kl: float, judge: float, quick: bool = False) -> FrontierGap:
        envelopes = self.quick if quick else self.full
        # the untrained start (KL 0) is every envelope's first point; a KL estimate a hair below 0 sits there
        at = [e.gain_at(max(kl, e.points[0].cost)) for e in envelopes]
        frontier = statistics.fmean(at)
        spread = statistics.stdev(at) if len(at) > 1 else 0.0
        # one run of dpo lands off the mean frontier by the seeds' spread there and by one scored point's own
        # scatter (sampling, and the curve between grid points): a run of dpo at another budget must read as dpo
        return FrontierGap(judge - frontier, frontier, math.hypot(spread, point_scatter(envelopes)))

    @classmethod
    def from_state(cls, state: dict) -> "ReferenceFrontier":
        def envelopes(points: torch.Tensor) -> tuple[Envelope, ...]:
            return tuple(Envelope.of([Point(float(kl), float(judge)) for kl, judge in seed.tolist()])
                         for seed in points)
        return cls(envelopes(state["full"]), envelopes(state["quick"]))


def point_scatter(envelopes: tuple[Envelope, ...]) -> float:
    """The standard deviation of one frontier point about the line through its neighbours: each inner point is
    predicted from the two beside it, and with equal noise on all three the residual's variance is 1.5 times a
    point's."""
    residuals = [b.gain - (a.gain + (b.cost - a.cost) / (c.cost - a.cost) * (c.gain - a.gain))
                 for e in envelopes for a, b, c in zip(e.points, e.points[1:], e.points[2:]) if c.cost > a.cost]
    if len(residuals) < 2:
        return 0.0
    return math.sqrt(statistics.fmean(r * r for r in residuals) / 1.5)


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


def trace_frontier(world: World, settings: PreferenceSettings, config: TrainConfig, tolerance: int,
                   workers: int | None = None) -> dict:
    """{"full", "quick"}: [seeds, points, 2] tensors of (KL, judge), the untrained start first.

    Each (seed, β multiple) run is independent and single-threaded, so the runs go to ``workers`` processes (default:
    the cores this process may use) and give the same numbers as one after another; ``workers=1`` traces here."""
    training = TrainingWorld(world.config, world.seed, settings.label_noise, world.reference_weights,
                             world.pairs(settings.label_noise))
    start = [(0.0, score_weights(world, world.reference_weights, config, tolerance, quick=q).judge)
             for q in (False, True)]
    runs = [(seed, multiple) for seed in range(config.frontier_seeds) for multiple in config.frontier_betas]
    results = run_dpo(DpoRuns(world, training, settings, config, tolerance), runs, workers)
    full, quick = [], []
    for seed in range(config.frontier_seeds):
        points: tuple[list, list] = ([start[0]], [start[1]])
        for (run_seed, _), run_points in zip(runs, results):
            if run_seed == seed:
                for index in (0, 1):
                    points[index].extend(run_points[index])
        full.append(points[0]), quick.append(points[1])
    width = max(len(p) for p in full)  # every seed has the same points unless a run stopped early: pad with start
    pad = (lambda rows: [row + [row[0]] * (width - len(row)) for row in rows])  # noqa: E731
    return {"full": torch.tensor(pad(full)), "quick": torch.tensor(pad(quick))}
