"""The classification contract and its unit checks: the same per-batch check serves the contract stage and every
training step (llm2.task_api.checks)."""

from __future__ import annotations

from typing import Any, Callable

import torch

from llm2.task_api.base import CandidateError, Contract
from llm2.task_api.checks import backpropagate, check_gradient, per_example_losses
from llm2.task_api.vocabulary import TENSOR_VOCABULARY

CONTRACT = Contract(
    arguments=("logits", "targets"),
    example_name="loss",
    description=(
        "def loss(logits, targets) -> torch.Tensor\n"
        "    logits:  float32 tensor [batch, classes], the network's unnormalised scores (before softmax)\n"
        "    targets: int64 tensor [batch], each example's training label as a class index (some are wrong)\n"
        "    returns: float tensor [batch], one loss per example; training minimises their mean, so it must be\n"
        "             differentiable with respect to logits"),
    vocabulary=TENSOR_VOCABULARY,  # torch's, F's and math's pure functions, tensor methods, pure builtins
)


def _confident(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Half the batch confidently wrong: the label's logit at −60 and another class at +60, the state of a network
    that has memorised other labels; a softmax then underflows to 0 for the label (naive log: −inf)."""
    logits = logits.clone()
    half = torch.arange(len(targets) // 2)
    logits[half, targets[half]] = -60.0
    logits[half, (targets[half] + 1) % logits.shape[1]] = 60.0
    return logits


def check_classification_contract(fn: Callable[..., Any], classes: int = 10) -> None:
    """Random batches of 8 and 1, then a confident batch of 8: raise CandidateError(stage='contract') with the
    reason when the output's type, dtype, shape or finiteness is wrong or no usable gradient reaches the logits."""
    generator = torch.Generator().manual_seed(0)
    for batch, confident in ((8, False), (1, False), (8, True)):
        targets = torch.randint(0, classes, (batch,), generator=generator)
        logits = torch.randn(batch, classes, generator=generator)
        logits = (_confident(logits, targets) if confident else logits).requires_grad_(True)
        where = f"on a batch of {batch}" + (" with confident logits of ±60" if confident else "")
        losses = per_example_losses(fn, (logits, targets.clone()), batch, where, "contract")
        backpropagate(losses.sum(), where, "contract")
        check_gradient(logits, "the logits", where)
        if not confident and not bool((logits.grad != 0).any()):
            raise CandidateError(f"the gradient with respect to the logits is zero everywhere ({where}): "
                                 "training would not change the network", stage="contract")
