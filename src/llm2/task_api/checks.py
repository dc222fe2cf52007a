"""Checks shared by tasks whose candidate returns one loss per example: one place, used by the contract's unit
checks (stage "contract") and by training at every step (stage "train")."""

from __future__ import annotations

from typing import Any, Callable

import torch

from llm2.task_api.base import CandidateError


def call_candidate(fn: Callable[..., Any], args: tuple, where: str, stage: str) -> Any:
    """``fn(*args)``; whatever it raises becomes a CandidateError saying where."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - any failure of candidate code is the candidate's
        raise CandidateError(f"the function raised {type(exc).__name__}: {exc} ({where})", stage=stage) from None


def per_example_losses(fn: Callable[..., Any], args: tuple, batch: int, where: str, stage: str,
                       require_finite: bool = True) -> torch.Tensor:
    """The candidate's per-example losses for ``args``: a float tensor [batch] with a gradient, or CandidateError."""
    losses = call_candidate(fn, args, where, stage)
    if not isinstance(losses, torch.Tensor):
        raise CandidateError(f"the function returned {type(losses).__name__}, not a torch.Tensor ({where})",
                             stage=stage)
    if not losses.is_floating_point():
        raise CandidateError(f"the function returned a tensor of {losses.dtype}, not a float tensor ({where})",
                             stage=stage)
    if tuple(losses.shape) != (batch,):
        raise CandidateError(f"the function returned shape {tuple(losses.shape)} but the contract needs ({batch},)"
                             f" ({where}): one loss per example, not reduced", stage=stage)
    if require_finite and not bool(torch.isfinite(losses).all()):
        raise CandidateError(f"the function returned non-finite values {losses.detach()[:8].tolist()} ({where})",
                             stage=stage)
    if not losses.requires_grad:
        raise CandidateError(f"the loss has no gradient with respect to its inputs ({where}); do not detach them "
                             "or convert them to numbers", stage=stage)
    return losses


def backpropagate(loss: torch.Tensor, where: str, stage: str) -> None:
    try:
        loss.backward()
    except Exception as exc:  # noqa: BLE001 - e.g. the loss modified its inputs in place
        raise CandidateError(f"backpropagating the loss failed ({where}): {type(exc).__name__}: {exc}",
                             stage=stage) from None


def check_gradient(tensor: torch.Tensor, name: str, where: str, stage: str = "contract") -> None:
    """The gradient that reached ``tensor`` (an input of the candidate) exists and is finite."""
    if tensor.grad is None:
        raise CandidateError(f"no gradient reaches {name} ({where})", stage=stage)
    if not bool(torch.isfinite(tensor.grad).all()):
        raise CandidateError(f"the gradient with respect to {name} is not finite ({where})", stage=stage)
