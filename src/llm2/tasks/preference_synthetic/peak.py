"""The ``judge-peak`` fitness: the best judge score along one longer run.

Training side (the confined child): the candidate's run goes to ``peak_budgets``' largest share of the setting's
budget and hands back its weights at every share, as one set of tensors: the last under the model's own names,
the earlier ones under ``checkpoint{i}.`` names, so the channel checks them all against one spec.

Scoring side (the trusted scorer): every checkpoint is judged on the selection prompts (the first
``selection_prompts`` held-out prompts); the best one is then scored on the remaining, evaluation prompts, and that
is the fitness. Choosing and reporting on the same prompts would make the maximum over checkpoints optimistic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from llm2.task_api.base import EvalSetting, TensorSpec, TrainOutput
from llm2.tasks.preference_synthetic.config import TrainConfig
from llm2.tasks.preference_synthetic.score import PolicyScores, score_weights
from llm2.tasks.preference_synthetic.train import total_steps, train_policy
from llm2.tasks.preference_synthetic.world import TrainingWorld, World


@dataclass(frozen=True)
class PeakTraining:
    """The training data of a judge-peak setting: the world, and how many checkpoints a run hands back."""

    world: TrainingWorld
    checkpoints: int


def checkpoint_prefix(index: int) -> str:
    return f"checkpoint{index}."


def peak_spec(spec: dict[str, TensorSpec], checkpoints: int) -> dict[str, TensorSpec]:
    """The model's own names for the last checkpoint, prefixed copies for the earlier ones."""
    earlier = {checkpoint_prefix(i) + name: s for i in range(checkpoints - 1) for name, s in spec.items()}
    return {**spec, **earlier}


def pack(earlier: list[dict[str, torch.Tensor]], last: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    packed = dict(last)
    for index, weights in enumerate(earlier):
        packed.update({checkpoint_prefix(index) + name: tensor for name, tensor in weights.items()})
    return packed


def unpack(weights: dict[str, torch.Tensor], checkpoints: int) -> list[dict[str, torch.Tensor]]:
    """The checkpoints in budget order (the scorer checks each against the model as usual)."""
    prefixes = [checkpoint_prefix(i) for i in range(checkpoints - 1)]
    last = {name: t for name, t in weights.items() if not name.startswith("checkpoint")}
    return [{name.removeprefix(p): t for name, t in weights.items() if name.startswith(p)} for p in prefixes] + [last]


def train_peak(fn: Callable, data: PeakTraining, setting: EvalSetting, config: TrainConfig, probe_fraction: float,
               checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
    """One run to the largest share of the budget; the weights at every share."""
    budgets = [share * setting.budget for share in config.peak_budgets]
    steps = [total_steps(len(data.world.pairs), budget, config) for budget in budgets[:-1]]
    kept: dict = dict.fromkeys(steps)

    def probe(output: TrainOutput) -> bool:  # the probe's weights stand in for every checkpoint not yet reached
        return checkpoint(TrainOutput(pack([output.weights] * len(steps), output.weights), output.loss_trace,
                                      output.steps))

    output = train_policy(fn, data.world, setting.replace(budget=budgets[-1]), config, probe_fraction,
                          probe if checkpoint is not None else None, kept)
    # a run that stopped early hands back its last weights in place of the checkpoints it never reached
    earlier = [kept[step] if kept[step] is not None else output.weights for step in steps]
    return TrainOutput(pack(earlier, output.weights), output.loss_trace, output.steps, output.stop_reason)


@dataclass(frozen=True)
class PeakScores:
    scores: PolicyScores  # the chosen checkpoint on the evaluation prompts
    chosen: int  # its index
    selection_judge: float  # its judge on the selection prompts


def score_peak(world: World, checkpoints: list[dict[str, torch.Tensor]], config: TrainConfig,
               tolerance: int) -> PeakScores:
    selection = world.heldout_prompts[:config.selection_prompts]
    evaluation = world.heldout_prompts[config.selection_prompts:]
    judged = [score_weights(world, weights, config, tolerance, prompts=selection).judge for weights in checkpoints]
    chosen = max(range(len(judged)), key=lambda i: (judged[i], -i))  # the earliest of equal ones
    return PeakScores(score_weights(world, checkpoints[chosen], config, tolerance, prompts=evaluation), chosen,
                      judged[chosen])
