"""Scoring a merge: exact-match accuracy of the merged model on held-out problems of every skill.

Runs in the trusted supervisor: it loads the held-out problems (scoring data) and the seed's weights (for the
reference row), never candidate code, and checks the weights it is handed before using them.
"""

from __future__ import annotations

import math

import torch

from llm2.task_api.base import Metrics, TrainOutput
from llm2.tasks.merging_synthetic import world
from llm2.tasks.merging_synthetic.model import model_from_state, solved
from llm2.task_api.threads import single_thread


def accuracy_key(skill: str) -> str:
    return f"accuracy_{skill}"


def by_length(problems: world.skillset.Problems, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``count`` problems in groups of equal length, each cut after its last answer token: the model is
    causal, so the padding after it changes nothing, and leaving it out makes scoring about a third cheaper."""
    tokens, targets = problems.tokens[:count], problems.targets[:count]
    ends = targets.shape[1] - targets.flip(1).int().argmax(dim=1)  # one past the last answer position
    groups = []
    for end in ends.unique().tolist():
        rows = (ends == end).nonzero().flatten()
        groups.append((tokens[rows, :end + 1], targets[rows, :end]))
    return groups


class MergedModelScorer:
    """Fitness: the mean exact-match over the merged experts' skills. Also reported: the worst of those skills and
    the mean over the skills no merged expert was trained on (how much of the seed's other abilities survive)."""

    def __init__(self, world_seed: int, skills: tuple[str, ...], recipe: str = "default"):
        self.skills = tuple(skills)
        self.recipe = world.RECIPES[recipe]
        self.problems = world.load_heldout(world_seed, recipe)
        self.others = tuple(s for s in self.problems if s not in self.skills)
        self.seed_weights = world.load_seed(world_seed, recipe)
        self._reference: Metrics | None = None
        self._groups: dict[tuple[str, int], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def score(self, output: TrainOutput, quick: bool = False) -> Metrics:
        self._check(output.weights)
        with single_thread():
            model = model_from_state(output.weights)
            count = self.recipe.quick_problems if quick else self.recipe.heldout_problems
            accuracies = {skill: self._accuracy(model, skill, count) for skill in self.skills}
            # the other skills are a side measure: a quarter of the problems keeps scoring well under a second
            others = {skill: self._accuracy(model, skill, self.recipe.quick_problems) for skill in self.others}
        values = {accuracy_key(s): a for s, a in {**accuracies, **others}.items()}
        values["worst"] = min(accuracies.values())
        values["others"] = sum(others.values()) / len(others) if others else math.nan
        return Metrics(sum(accuracies.values()) / len(accuracies), values)

    def reference_metrics(self) -> Metrics:
        """The seed model, unmerged."""
        if self._reference is None:
            self._reference = self.score(TrainOutput(self.seed_weights, [], 0))
        return self._reference

    def _accuracy(self, model: torch.nn.Module, skill: str, count: int) -> float:
        key = (skill, count)
        if key not in self._groups:
            self._groups[key] = by_length(self.problems[skill], count)
        right = sum(int(solved(model, tokens, targets).sum()) for tokens, targets in self._groups[key])
        return right / count

    def _check(self, weights: dict[str, torch.Tensor]) -> None:
        expected = {name: tuple(t.shape) for name, t in self.seed_weights.items()}
        found = {name: tuple(t.shape) for name, t in weights.items()}
        if found != expected:
            raise ValueError(f"the merged weights do not match the model: expected {len(expected)} tensors "
                             f"{sorted(expected)[:3]}..., got {len(found)}")
        for name, tensor in weights.items():
            if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"the merged parameter {name!r} is not a finite float tensor")
