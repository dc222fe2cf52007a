"""Scoring from trained weights alone: sample on held-out prompts; gold reward, naturalness, the judge and
KL(pi || pi_ref) all come from the same samples.

Runs in the trusted scorer, which alone holds the world's hidden process, gold reward and held-out prompts. Never
imports candidate code; the weights are checked against the model's shapes before use.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llm2.task_api.base import CandidateError
from llm2.tasks.preference_synthetic.config import TrainConfig
from llm2.tasks.preference_synthetic.model import TinyGPT, completion_logps, sample
from llm2.tasks.preference_synthetic.world import World
from llm2.task_api.threads import single_thread


@dataclass(frozen=True)
class PolicyScores:
    gold_reward: float  # mean gold reward of the samples
    reward_std: float
    naturalness: float  # share of the samples' transitions that the hidden process finds plausible
    judge: float  # mean gold reward, each sample's discounted by how unnatural it reads
    kl: float  # KL(pi || pi_ref) estimated from the samples


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


def implausible_counts(world: World, sequences: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """[batch]: how many of each completion's transitions the hidden process would (almost) never make."""
    return (world.transition_probabilities(sequences) < config.implausible_probability).sum(dim=1)


def judge_tolerance(world: World, config: TrainConfig) -> int:
    """Implausible transitions a completion may have and still read as natural: as many as ``judge_quantile`` of
    the reference's own samples (the preference pairs' completions) have at most."""
    counts = torch.cat([implausible_counts(world, world.completions_a, config),
                        implausible_counts(world, world.completions_b, config)])
    return int(counts.float().quantile(config.judge_quantile, interpolation="higher").item())


def judge_scores(rewards: torch.Tensor, counts: torch.Tensor, tolerance: int) -> torch.Tensor:
    """Per completion: its gold reward, halved for every implausible transition beyond the tolerance."""
    return rewards * 0.5 ** (counts - tolerance).clamp(min=0).to(rewards.dtype)


@torch.no_grad()
def score_weights(world: World, weights: dict[str, torch.Tensor], config: TrainConfig, tolerance: int,
                  quick: bool = False, prompts: torch.Tensor | None = None) -> PolicyScores:
    """The policy's scores on the held-out prompts (the first ``quick_prompts`` of them when ``quick``), or on
    ``prompts`` when given (a subset of them)."""
    if prompts is None:
        prompts = world.heldout_prompts[:config.quick_prompts] if quick else world.heldout_prompts
    with single_thread():
        policy = policy_from_weights(world, weights)
        generator = torch.Generator().manual_seed(world.sampling_seed)
        sequences = sample(policy, prompts, world.config.completion_length, generator)
        rewards = world.gold_reward(sequences)
        counts = implausible_counts(world, sequences, config)
        judged = judge_scores(rewards, counts, tolerance)
        # KL(pi || pi_ref) ~ mean over samples from pi of sum_t (log pi - log pi_ref)
        prompt_length = world.config.prompt_length
        log_ratio = (completion_logps(policy, sequences, prompt_length)
                     - completion_logps(world.frozen_reference(), sequences, prompt_length)).sum(dim=1)
    return PolicyScores(gold_reward=rewards.mean().item(), reward_std=rewards.std().item(),
                        naturalness=1.0 - counts.sum().item() / counts.numel() / world.config.completion_length,
                        judge=judged.mean().item(), kl=log_ratio.mean().item())
