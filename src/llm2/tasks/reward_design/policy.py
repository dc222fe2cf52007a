"""The policy both sides share: a small tanh MLP giving the mean of a Gaussian over actions in [-1, 1] (scaled to the
environment's bounds), on observations divided by the environment's fixed scale. The child trains it; the trusted
scorer rebuilds it from the returned weights and acts with its mean."""

from __future__ import annotations

import torch
from torch import nn

from llm2.tasks.reward_design.envs import EnvSpec

HIDDEN = 64


def mlp(inputs: int, outputs: int, hidden: int = HIDDEN) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, outputs))


class Actor(nn.Module):
    def __init__(self, spec: EnvSpec):
        super().__init__()
        self.net = mlp(spec.obs_dim, 1)
        self.log_std = nn.Parameter(torch.zeros(1))
        self.register_buffer("obs_scale", torch.tensor(spec.obs_scale, dtype=torch.float32), persistent=False)
        self.action_bound = spec.action_bound

    def mean(self, obs: torch.Tensor) -> torch.Tensor:
        """The mean action in [-1, 1]-units (before clipping and scaling)."""
        return self.net(obs / self.obs_scale)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action in the environment's units, clipped to its bounds."""
        return self.mean(obs).clamp(-1.0, 1.0) * self.action_bound


def actor_state(actor: Actor) -> dict[str, torch.Tensor]:
    return {f"actor.{name}": t.detach().float().clone() for name, t in actor.state_dict().items()}


def load_actor(spec: EnvSpec, weights: dict[str, torch.Tensor]) -> Actor:
    """An actor from the ``actor.*`` tensors; ValueError when they do not fit."""
    actor = Actor(spec)
    own = {name.removeprefix("actor."): t for name, t in weights.items() if name.startswith("actor.")}
    try:
        actor.load_state_dict(own, strict=True)
    except RuntimeError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    return actor.eval()
