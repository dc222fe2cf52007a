"""Scoring from trained weights alone: sample on held-out prompts, mean gold reward, KL(pi || pi_ref).

Never imports candidate code; the weights are checked against the model's shapes before use.
"""

from __future__ import annotations

import torch

from llm2.tasks.base import CandidateError
from llm2.tasks.preference_synthetic.config import TrainConfig
from llm2.tasks.preference_synthetic.model import TinyGPT, completion_logps, sample
from llm2.tasks.preference_synthetic.world import World
from llm2.tasks.threads import single_thread


def policy_from_weights(world: World, weights: dict[str, torch.Tensor]) -> TinyGPT:
    model = TinyGPT(world.config)
    expected = model.state_dict()
    if set(weights) != set(expected):
        missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
        raise CandidateError(f"the weights do not match the model (missing {missing}, unexpected {unexpected})",
                             stage="score")
    for name, tensor in weights.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CandidateError(f"weight {name} has shape {tuple(tensor.shape)}, the model needs"
                                 f" {tuple(expected[name].shape)}", stage="score")
        if not torch.isfinite(tensor).all():
            raise CandidateError(f"weight {name} holds non-finite values", stage="score")
    model.load_state_dict({name: tensor.float() for name, tensor in weights.items()})
    return model.eval()


@torch.no_grad()
def score_weights(world: World, weights: dict[str, torch.Tensor], config: TrainConfig,
                  quick: bool = False) -> tuple[float, float, float]:
    """(mean gold reward, KL estimate, reward std) of the policy on the held-out prompts."""
    prompts = world.heldout_prompts[:config.quick_prompts] if quick else world.heldout_prompts
    with single_thread():
        policy = policy_from_weights(world, weights)
        generator = torch.Generator().manual_seed(world.sampling_seed)
        sequences = sample(policy, prompts, world.config.completion_length, generator)
        rewards = world.gold_reward(sequences)
        # KL(pi || pi_ref) ~ mean over samples from pi of sum_t (log pi - log pi_ref)
        prompt_length = world.config.prompt_length
        log_ratio = (completion_logps(policy, sequences, prompt_length)
                     - completion_logps(world.frozen_reference(), sequences, prompt_length)).sum(dim=1)
    return rewards.mean().item(), log_ratio.mean().item(), rewards.std().item()
