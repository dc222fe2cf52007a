"""The inner training loop (inside the candidate's confined process): a fresh network, the candidate's mean
per-example loss on mini-batches of the noisy training labels, the recipe's fixed budget.

A loss that breaks the contract at some step (raises, wrong shape, no gradient, non-finite at the first step)
raises CandidateError; one that turns non-finite later has diverged: training stops with the reason.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch
import torch.nn.functional as F

from llm2.task_api.base import CandidateError, EvalSetting, TrainOutput
from llm2.task_api.checks import backpropagate, per_example_losses
from llm2.tasks.classification.data import TrainingData, to_inputs
from llm2.tasks.classification.model import build_model, float_state
from llm2.tasks.classification.settings import ClassificationSettings, Recipe
from llm2.task_api.threads import single_thread

CROP_PADDING = 4


def device_for(settings: ClassificationSettings) -> torch.device:
    """The ResNet trains on a GPU when there is one; the digits MLP is faster on one CPU thread than on any GPU."""
    return torch.device("cuda" if settings.recipe.model == "resnet18" and torch.cuda.is_available() else "cpu")


def batch_plan(examples: int, batch_size: int) -> tuple[int, int]:
    """(batch size, steps per epoch): full batches only, the partial last one dropped (a new one every epoch)."""
    size = min(batch_size, examples)
    return size, examples // size


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crops of the zero-padded images and random horizontal flips (uint8 in, uint8 out)."""
    n, _, height, width = images.shape
    padded = F.pad(images, (CROP_PADDING,) * 4)
    shifts = torch.randint(0, 2 * CROP_PADDING + 1, (2, n), generator=generator).to(images.device)
    rows = torch.arange(height, device=images.device)[None, :] + shifts[0][:, None]
    cols = torch.arange(width, device=images.device)[None, :] + shifts[1][:, None]
    crops = padded[torch.arange(n, device=images.device)[:, None, None, None],
                   torch.arange(images.shape[1], device=images.device)[None, :, None, None],
                   rows[:, None, :, None], cols[:, None, None, :]]
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)[:, None, None, None]
    return torch.where(flip, crops.flip(3), crops)


def _optimizer(model: torch.nn.Module, recipe: Recipe, total_steps: int):
    if recipe.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        return optimizer, None
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))


def _weights_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def train_classifier(fn: Callable, data: TrainingData, setting: EvalSetting, probe_fraction: float,
                     checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
    recipe = setting.task.recipe
    device = device_for(setting.task)
    batch_size, per_epoch = batch_plan(len(data.labels), recipe.batch_size)
    planned = recipe.epochs * per_epoch  # the full budget; a smaller one is its prefix (same schedule)
    steps = max(1, round(setting.budget * planned))
    probe_step = max(1, math.ceil(probe_fraction * steps))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    with single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(setting.seed)  # the initial weights
        model = build_model(recipe.model, data.classes).to(device).train()
        optimizer, schedule = _optimizer(model, recipe, planned)
        generator = torch.Generator().manual_seed(setting.seed)  # batch order and augmentation
        images, labels = data.images.to(device), data.labels.to(device)
        trace: list[float] = []
        epoch_losses: list[torch.Tensor] = []
        stop_reason = None
        for step in range(steps):
            if step % per_epoch == 0:
                order = torch.randperm(len(labels), generator=generator).to(device)
            index = order[(step % per_epoch) * batch_size:(step % per_epoch + 1) * batch_size]
            batch = augment(images[index], generator) if recipe.augment else images[index]
            with autocast:
                logits = model(to_inputs(batch, data.dataset))
            where = f"at training step {step}"
            loss = per_example_losses(fn, (logits.float(), labels[index].clone()), len(index), where, "train",
                                      require_finite=False).mean()
            if step == 0 and not bool(torch.isfinite(loss)):  # broken at the start: the contract, not divergence
                raise CandidateError(f"the loss is not finite ({loss.item()}) at the first training step",
                                     stage="train")
            optimizer.zero_grad(set_to_none=True)
            backpropagate(loss, where, "train")
            optimizer.step()
            if schedule is not None:
                schedule.step()
            epoch_losses.append(loss.detach())
            end_of_epoch = (step + 1) % per_epoch == 0 or step + 1 == steps
            if end_of_epoch or step + 1 == probe_step:
                # checked once an epoch (and at the probe): one synchronisation, not one per step
                mean = torch.stack(epoch_losses).mean().item()
                if not math.isfinite(mean) or not _weights_finite(model):
                    stop_reason = f"the loss or the weights became non-finite by step {step + 1} of {steps}"
                    break
                if end_of_epoch:
                    trace.append(mean)
                    epoch_losses = []
            if checkpoint is not None and step + 1 == probe_step:
                if not checkpoint(TrainOutput(float_state(model), list(trace), step + 1)):
                    stop_reason = f"stopped by the probe checkpoint after {step + 1} of {steps} steps"
                    break
    return TrainOutput(float_state(model), trace, step + 1, stop_reason)
