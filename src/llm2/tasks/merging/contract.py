"""The merging contract: one parameter at a time, as mergekit's merge methods are, so that a merge streams through
models larger than memory. One helper checks a candidate's answer for one parameter; the contract's unit checks
and both tasks' merges use it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from llm2.task_api.base import CandidateError, Contract
from llm2.task_api.checks import call_candidate
from llm2.task_api.vocabulary import IN_PLACE_METHODS, TENSOR_VOCABULARY

MERGE_CONTRACT = Contract(
    arguments=("name", "base", "experts"),
    example_name="merge",
    description=(
        "def merge(name, base, experts) -> torch.Tensor\n"
        "    name: str, the parameter's name in the model's state dict, as in Hugging Face models\n"
        "        ('model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.1.mlp.down_proj.weight',\n"
        "        'model.norm.weight', 'lm_head.weight', ...)\n"
        "    base: float32 tensor, this parameter in the seed (base) model\n"
        "    experts: list of float32 tensors of base's shape, this parameter in each expert model; every expert was\n"
        "        fine-tuned from the seed, so expert - base is its task vector\n"
        "    returns: the merged parameter, a float tensor of base's shape with finite values.\n"
        "merge is called once per parameter, independently (nothing carries over between calls), in any order.\n"
        "Random operations (torch.rand_like, torch.bernoulli, torch.randperm) may be used: the random generator is\n"
        "seeded once before the first call, so a merge is reproducible."),
    # a candidate gets tensors of its own (copies, or fresh reads when streaming): in-place methods change nothing else
    vocabulary=TENSOR_VOCABULARY.extended(methods=IN_PLACE_METHODS),
)


def checked_merge(fn: Callable[..., Any], name: str, base: torch.Tensor, experts: Sequence[torch.Tensor],
                  stage: str, copy_inputs: bool = True) -> torch.Tensor:
    """The candidate's merged tensor for one parameter (on the CPU, in base's dtype), checked; CandidateError names
    the parameter otherwise.

    With ``copy_inputs`` the candidate gets copies, so that changing its inputs in place cannot alter models that
    are merged again (in memory); a streaming merge reads fresh tensors for every call and skips the copies.
    """
    where = f"parameter {name!r}"
    if copy_inputs:
        base, experts = base.clone(), [e.clone() for e in experts]
    with torch.no_grad():
        merged = call_candidate(fn, (name, base, list(experts)), where, stage)
    if not isinstance(merged, torch.Tensor):
        raise CandidateError(f"merge returned {type(merged).__name__} for {where}, not a torch.Tensor", stage=stage)
    if tuple(merged.shape) != tuple(base.shape):
        raise CandidateError(f"merge returned shape {tuple(merged.shape)} for {where}, whose shape is "
                             f"{tuple(base.shape)}", stage=stage)
    if not merged.is_floating_point():
        raise CandidateError(f"merge returned a tensor of {merged.dtype} for {where}, not a float tensor",
                             stage=stage)
    merged = merged.detach().to(device="cpu", dtype=base.dtype)
    if not bool(torch.isfinite(merged).all()):
        bad = int((~torch.isfinite(merged)).sum())
        raise CandidateError(f"merge returned {bad} non-finite values (nan or inf) for {where}", stage=stage)
    return merged.contiguous()


# Small stand-ins for the contract's unit checks: a matrix, a vector (a norm's weight) and a one-element tensor,
# named as in a Llama, with task vectors of realistic size (a few percent of the weights).
_CHECK_SHAPES = (("model.layers.0.mlp.up_proj.weight", (12, 8)), ("model.norm.weight", (8,)),
                 ("model.layers.1.self_attn.o_proj.weight", (1, 1)))


def check_merge_contract(fn: Callable[..., Any], experts: int) -> None:
    """Call the candidate on small random parameters with ``experts`` experts (and with two); CandidateError
    (stage "contract") when an answer breaks the contract."""
    generator = torch.Generator().manual_seed(0)
    for count in sorted({experts, 2}):
        for name, shape in _CHECK_SHAPES:
            base = torch.randn(shape, generator=generator)
            others = [base + 0.05 * torch.randn(shape, generator=generator) for _ in range(count)]
            torch.manual_seed(0)
            checked_merge(fn, name, base, others, stage="contract")
