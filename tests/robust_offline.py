"""An outside task that ships its own offline proposer on llm2's base: robust regression (example_task.py) with a
two-move grammar, a robust loss (the absolute or Huber error at some scale) or a loss blind to the target. The task
declares the proposer in ``offline_proposers``, as a task from outside the package would."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Mapping

from llm2.proposers.base import ScoredCandidate
from llm2.proposers.offline import Grammar, OfflineProposer, Parent, Variation
from llm2.task_api.registry import import_user_file

# the sandbox's workers load this file by its path, without tests/ on sys.path: the example task comes the same way
RobustRegression = import_user_file(Path(__file__).with_name("example_task.py"), "llm2_user_task").RobustRegression

BODIES = {"absolute": "(prediction - target).abs()",
          "huber": "torch.nn.functional.huber_loss(prediction, target, reduction='none')",
          "blind": "prediction.abs()"}
GENOME_LINE = "    # genome: "


class RobustGrammar(Grammar):
    name = "robust-offline"
    move_weights = {"robust": 0.5, "blind": 0.5}

    def read(self, candidate: ScoredCandidate, context: None) -> tuple[str, float] | None:
        for line in candidate.code.splitlines():
            if line.startswith(GENOME_LINE):
                kind, _, scale = line[len(GENOME_LINE):].partition(" ")
                return (kind, float(scale)) if kind in BODIES else None
        return None

    def key(self, genome: tuple[str, float]) -> str:
        return f"{genome[0]} {genome[1]:g}"

    def vary(self, rng: random.Random, parents: list[Parent], context: None,
             weights: Mapping[str, float]) -> Variation:
        move = rng.choices(list(weights), list(weights.values()))[0]
        kind = rng.choice(("absolute", "huber")) if move == "robust" else "blind"
        return Variation((kind, round(rng.uniform(0.5, 3.0), 2)), move, (), f"a {kind} loss")

    def render(self, genome: tuple[str, float], context: None) -> str:
        kind, scale = genome
        return (f"def loss(prediction, target):\n{GENOME_LINE}{kind} {scale:g}\n"
                f"    return {scale!r} * {BODIES[kind]}\n")

    def name_of(self, variation: Variation, taken: set[str]) -> str:
        kind, scale = variation.genome
        return f"{kind}_{scale:g}".replace(".", "p")

    def thought(self, variation: Variation, context: None) -> str:
        return f"Try {variation.what}."


class RobustOfflineProposer(OfflineProposer):
    def __init__(self, seed: int = 0):
        super().__init__(RobustGrammar(), seed)


class RobustRegressionWithProposer(RobustRegression):
    offline_proposer = "robust-offline"
    offline_proposers = {"robust-offline": "robust_offline:RobustOfflineProposer"}
