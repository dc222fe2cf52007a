"""Gymnasium's classic-control dynamics, many environments as one batch of torch tensors.

Each environment follows gymnasium's own ``step`` (``tests/test_reward_design.py`` checks them step for step),
with its physical parameters as per-environment tensors so that domain randomisation and held-out dynamics are a
matter of filling them in. Observations, actions and termination are gymnasium's; the time limit is the registered
``max_episode_steps``. The true goal of each environment (``success``) is written here, once, for the child's
training statistics and for the trusted scorer alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Parameter:
    """A physical parameter: gymnasium's value (training uses it unless the candidate randomises it), the bounds a
    candidate may randomise it within, and the ranges the scorer draws held-out dynamics from: away from the
    nominal value, and (``far``) further out, partly beyond the randomisation bounds."""

    name: str
    nominal: float
    bounds: tuple[float, float]  # domain randomisation may choose any sub-range of this
    heldout: tuple[float, float]  # the scorer's draws (dynamics "heldout")
    far: tuple[float, float]  # further out still (dynamics "far", a held-out setting)
    meaning: str


@dataclass(frozen=True)
class EnvSpec:
    name: str  # the settings' value
    gym_id: str
    obs_names: tuple[str, ...]
    obs_scale: tuple[float, ...]  # the policy sees obs / scale (fixed, part of the architecture)
    action_bound: float  # actions are clipped to [-bound, bound]
    horizon: int  # gymnasium's max_episode_steps
    parameters: tuple[Parameter, ...]
    goal: str  # the true goal in words

    @property
    def obs_dim(self) -> int:
        return len(self.obs_names)

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)


MOUNTAIN_CAR = EnvSpec(
    name="mountain_car", gym_id="MountainCarContinuous-v0", obs_names=("position", "velocity"),
    obs_scale=(1.0, 0.07), action_bound=1.0, horizon=999,
    parameters=(
        Parameter("power", 0.0015, (0.0010, 0.0020), (0.0011, 0.0014), (0.0009, 0.0011),
                  "the engine's acceleration per unit of action"),
        Parameter("gravity", 0.0025, (0.0020, 0.0030), (0.0025, 0.0029), (0.0028, 0.0031),
                  "the slope's pull, velocity -= gravity * cos(3 * position) each step"),
    ),
    goal="reach the flag on the right hill top (position >= 0.45) within 999 steps",
)
PENDULUM = EnvSpec(
    name="pendulum", gym_id="Pendulum-v1", obs_names=("cos_theta", "sin_theta", "theta_dot"),
    obs_scale=(1.0, 1.0, 8.0), action_bound=2.0, horizon=200,
    parameters=(
        Parameter("g", 10.0, (8.0, 12.0), (10.5, 12.5), (12.5, 14.0), "gravity"),
        Parameter("m", 1.0, (0.8, 1.2), (1.05, 1.3), (1.3, 1.5), "the pendulum's mass"),
        Parameter("l", 1.0, (0.8, 1.2), (0.9, 1.1), (0.9, 1.1), "the pendulum's length"),
    ),
    goal=("swing the pendulum up and hold it upright: within 0.3 rad of the top for each of the last 50 of the "
          "200 steps"),
)
ENVS = {spec.name: spec for spec in (MOUNTAIN_CAR, PENDULUM)}
PENDULUM_HOLD = 50  # the last steps the pendulum must stay upright
PENDULUM_UPRIGHT = 0.3  # radians


def angle_normalize(theta: torch.Tensor) -> torch.Tensor:
    return torch.remainder(theta + math.pi, 2 * math.pi) - math.pi


class BatchEnv:
    """``count`` environments of one spec, stepped together. Each episode's physical parameters are drawn uniformly
    from ``ranges`` (parameter name -> (low, high)) when it starts; parameters not named keep gymnasium's values.
    No automatic reset: the caller resets the environments that ended (``reset(mask)``)."""

    def __init__(self, spec: EnvSpec, count: int, generator: torch.Generator,
                 ranges: dict[str, tuple[float, float]] | None = None):
        self.spec, self.count, self.generator = spec, count, generator
        self.ranges = dict(sorted((ranges or {}).items()))
        self.params = {p.name: torch.full((count,), p.nominal, dtype=torch.float64) for p in spec.parameters}
        self.state = torch.zeros(count, 2, dtype=torch.float64)
        self.t = torch.zeros(count, dtype=torch.long)
        self.upright_run = torch.zeros(count, dtype=torch.long)  # pendulum: consecutive upright steps
        self.reset(torch.ones(count, dtype=torch.bool))

    def reset(self, mask: torch.Tensor) -> None:
        n = int(mask.sum())
        if n == 0:
            return
        u = torch.rand(n, 2, generator=self.generator, dtype=torch.float64)
        if self.spec is MOUNTAIN_CAR:
            fresh = torch.stack([-0.6 + 0.2 * u[:, 0], torch.zeros(n, dtype=torch.float64)], dim=1)
        else:
            fresh = torch.stack([math.pi * (2 * u[:, 0] - 1), 2 * u[:, 1] - 1], dim=1)
        self.state[mask] = fresh
        self.t[mask] = 0
        self.upright_run[mask] = 0
        for name, (low, high) in self.ranges.items():
            self.params[name][mask] = low + (high - low) * torch.rand(n, generator=self.generator,
                                                                      dtype=torch.float64)

    def observe(self) -> torch.Tensor:
        if self.spec is MOUNTAIN_CAR:
            return self.state.float()
        theta, speed = self.state[:, 0], self.state[:, 1]
        return torch.stack([torch.cos(theta), torch.sin(theta), speed], dim=1).float()

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clip ``action`` [count, 1] to the bounds and step; (next_obs, terminated, truncated) back."""
        force = action[:, 0].double().clamp(-self.spec.action_bound, self.spec.action_bound)
        if self.spec is MOUNTAIN_CAR:
            terminated = self._mountain_car(force)
        else:
            terminated = self._pendulum(force)
        self.t += 1
        truncated = (self.t >= self.spec.horizon) & ~terminated
        return self.observe(), terminated, truncated

    def _mountain_car(self, force: torch.Tensor) -> torch.Tensor:
        position, velocity = self.state[:, 0], self.state[:, 1]
        velocity = velocity + force * self.params["power"] - self.params["gravity"] * torch.cos(3 * position)
        velocity = velocity.clamp(-0.07, 0.07)
        position = (position + velocity).clamp(-1.2, 0.6)
        velocity = torch.where((position == -1.2) & (velocity < 0), torch.zeros_like(velocity), velocity)
        # gymnasium keeps its state as float32 between steps
        self.state = torch.stack([position, velocity], dim=1).float().double()
        return (self.state[:, 0] >= 0.45) & (self.state[:, 1] >= 0.0)

    def _pendulum(self, force: torch.Tensor) -> torch.Tensor:
        theta, speed = self.state[:, 0], self.state[:, 1]
        g, m, length = self.params["g"], self.params["m"], self.params["l"]
        speed = speed + (3 * g / (2 * length) * torch.sin(theta) + 3.0 / (m * length ** 2) * force) * 0.05
        speed = speed.clamp(-8.0, 8.0)
        theta = theta + speed * 0.05
        self.state = torch.stack([theta, speed], dim=1)
        upright = angle_normalize(theta).abs() < PENDULUM_UPRIGHT
        self.upright_run = torch.where(upright, self.upright_run + 1, torch.zeros_like(self.upright_run))
        return torch.zeros_like(upright)  # Pendulum never terminates

    def succeeded(self, terminated: torch.Tensor, ended: torch.Tensor) -> torch.Tensor:
        """Which of the environments that just ended (``ended``) reached the true goal."""
        if self.spec is MOUNTAIN_CAR:
            return terminated
        return ended & (self.upright_run >= PENDULUM_HOLD)


DYNAMICS = ("nominal", "heldout", "far")


def dynamics_ranges(spec: EnvSpec, dynamics: str) -> dict[str, tuple[float, float]]:
    """The parameter ranges of the scorer's dynamics: gymnasium's values, the held-out ranges, or further out."""
    if dynamics == "nominal":
        return {}
    return {p.name: (p.heldout if dynamics == "heldout" else p.far) for p in spec.parameters}
