"""The inner training loop: the policy starts at the reference and minimises the candidate's mean per-pair loss.

Runs inside the candidate's confined process. The loss is called positionally, ``fn(policy_chosen,
policy_rejected, reference_chosen, reference_rejected, beta)``, as the paper's code does, so a candidate may name its
parameters as it likes. A loss that breaks the contract (raises, wrong shape, no gradient, non-finite at the first
step) raises CandidateError; one that becomes non-finite later has diverged: training stops and the weights so far
are kept.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from llm2.curves import subsample
from llm2.task_api.base import CandidateError, EvalSetting, TrainOutput
from llm2.task_api.checkpoint import pause_budgets
from llm2.task_api.checks import backpropagate, per_example_losses
from llm2.tasks.preference_synthetic.config import TrainConfig
from llm2.tasks.preference_synthetic.model import completion_logps
from llm2.tasks.preference_synthetic.world import TrainingWorld
from llm2.task_api.threads import single_thread


CURVE_POINTS = 48


def total_steps(pairs: int, budget: float, config: TrainConfig) -> int:
    return max(1, round(budget * config.epochs * (pairs // config.batch_size)))


def batch_indices(pairs: int, steps: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``steps`` batches of shuffled pair indices, reshuffled at every epoch; the partial last batch is dropped."""
    batches: list[torch.Tensor] = []
    while len(batches) < steps:
        batches.extend(torch.randperm(pairs, generator=generator).split(batch_size)[:pairs // batch_size])
    return batches[:steps]


def train_policy(fn: Callable, world: TrainingWorld, setting: EvalSetting, config: TrainConfig,
                 probe_fraction: float, checkpoint: Callable[[TrainOutput], bool] | None = None,
                 kept: dict[int, dict[str, torch.Tensor]] | None = None) -> TrainOutput:
    """Train for ``setting.budget``; with ``kept`` (step -> None), the weights after each of those steps are put
    there (the checkpoints of one run)."""
    pairs = world.pairs
    steps = total_steps(len(pairs), setting.budget, config)
    probe_step = max(1, math.ceil(probe_fraction * steps))
    # a rung's cut: where a run at that budget would end (the same batches, a constant learning rate)
    pauses = {total_steps(len(pairs), budget, config): budget for budget in pause_budgets(checkpoint)}
    trace: list[float] = []
    watched = Watched()
    stop_reason = None
    with single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(setting.seed)  # dropout masks
        order = batch_indices(len(pairs), steps, config.batch_size, torch.Generator().manual_seed(setting.seed))
        policy = world.reference_model(config.dropout).train()  # train mode: dropout is the noise rho needs
        optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, fused=True)  # one kernel, not one per tensor
        for step, index in enumerate(order):
            # chosen and rejected in one forward pass
            logps = completion_logps(policy, torch.cat([pairs.chosen[index], pairs.rejected[index]]),
                                     world.config.prompt_length).sum(dim=1)
            chosen, rejected = logps.split(len(index))
            watched.add(step, chosen.detach() - pairs.reference_chosen_logps[index],
                        rejected.detach() - pairs.reference_rejected_logps[index], float(setting.task.beta))
            args = (chosen, rejected, pairs.reference_chosen_logps[index], pairs.reference_rejected_logps[index],
                    float(setting.task.beta))
            where = f"at training step {step}"
            loss = per_example_losses(fn, args, len(index), where, "train", require_finite=False).mean()
            if not torch.isfinite(loss):
                if step == 0:  # broken at the starting point: a contract violation, not a divergence
                    raise CandidateError(f"the loss is not finite ({loss.item()}) at the first training step",
                                         stage="train")
                stop_reason = f"the loss became non-finite ({loss.item()}) at step {step}"
                break
            optimizer.zero_grad(set_to_none=True)
            backpropagate(loss, where, "train")
            if all(parameter.grad is None for parameter in policy.parameters()):
                raise CandidateError(f"no gradient reaches the policy from the loss ({where})", stage="train")
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), math.inf)
            if not torch.isfinite(grad_norm):  # checked before the update, so the weights stay finite
                stop_reason = f"the gradient became non-finite at step {step}"
                break
            optimizer.step()
            trace.append(loss.item())
            watched.loss.append(trace[-1])
            if kept is not None and step + 1 in kept:
                kept[step + 1] = snapshot(policy)
            if checkpoint is not None and step + 1 == probe_step:
                if not checkpoint(TrainOutput(snapshot(policy), list(trace), step + 1)):
                    stop_reason = f"stopped by the probe checkpoint after {step + 1} of {steps} steps"
                    break
            if step + 1 in pauses:
                if not checkpoint.pause(pauses[step + 1], TrainOutput(snapshot(policy), list(trace), step + 1)):
                    stop_reason = f"stopped at a rung's cut after {step + 1} of {steps} steps"
                    break
    if stop_reason is None and not all(torch.isfinite(p).all() for p in policy.parameters()):
        stop_reason = "the weights became non-finite"
    return TrainOutput(snapshot(policy), trace, len(trace), stop_reason, curves=watched.curves())


class Watched:
    """Per step: the loss, the mean margin x = β·ρ and the mean log-ratios of the chosen and rejected completions
    (policy minus reference, nats); handed back sub-sampled as the training curves."""

    def __init__(self) -> None:
        self.steps: list[float] = []
        self.margin: list[float] = []
        self.chosen: list[float] = []
        self.rejected: list[float] = []
        self.loss: list[float] = []

    def add(self, step: int, chosen_ratio: torch.Tensor, rejected_ratio: torch.Tensor, beta: float) -> None:
        self.steps.append(float(step))
        self.margin.append(beta * float((chosen_ratio - rejected_ratio).mean()))
        self.chosen.append(float(chosen_ratio.mean()))
        self.rejected.append(float(rejected_ratio.mean()))

    def curves(self) -> dict[str, list[float]]:
        # the step whose loss was not finite has no loss: every curve stops at the last step that has one
        steps = max(len(self.loss), min(len(self.steps), len(self.loss) + 1))
        named = {"step": self.steps[:steps], "loss": self.loss + [math.nan] * (steps - len(self.loss)),
                 "margin": self.margin[:steps], "chosen_logratio": self.chosen[:steps],
                 "rejected_logratio": self.rejected[:steps]}
        return {name: subsample(values, CURVE_POINTS) for name, values in named.items()}


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Weights as independent contiguous tensors, ready for safetensors."""
    return {name: tensor.detach().clone().contiguous() for name, tensor in model.state_dict().items()}
