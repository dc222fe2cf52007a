"""A compact PPO (Schulman et al. 2017) on a batch of environments in one process: clipped surrogate, GAE,
advantage normalisation, rewards scaled by a running estimate of the discounted return's spread (as
VecNormalize does, so rewards of any scale train alike), time-limit truncation bootstrapped from the value.

The reward is the candidate's, called once per step on the whole batch; its terms' means and the true goal's
success rate are recorded for each tenth of training (Eureka's reward reflection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from llm2.tasks.reward_design.envs import BatchEnv
from llm2.tasks.reward_design.policy import Actor, mlp

PHASES = 10  # the training curve's points


@dataclass(frozen=True)
class PPOConfig:
    envs: int = 64
    rollout: int = 64  # steps per environment between updates
    epochs: int = 4
    minibatches: int = 4
    gamma: float = 0.99
    lam: float = 0.95
    clip: float = 0.2
    lr: float = 1e-3
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    max_grad_norm: float = 0.5
    reward_clip: float = 10.0
    init_log_std: float = -1.0  # exploration at the start: std e^-1 ≈ 0.37 of the action range


# Mountain car: a long horizon (999 steps) wants a long discount, and small initial exploration (so that random
# actions alone rarely reach the flag: shaping matters). Pendulum: the short discount and many epochs per batch of
# the tuned Pendulum settings in the RL Baselines3 Zoo.
PPO_CONFIGS = {
    "mountain_car": PPOConfig(),
    "pendulum": PPOConfig(rollout=128, epochs=10, gamma=0.9, init_log_std=0.0),
}


@dataclass
class Reflection:
    """What training saw, per tenth of training: each term's mean per step, episodes ended, successes."""

    names: list[str]
    term_sums: torch.Tensor  # [terms, PHASES]
    steps: torch.Tensor  # [PHASES] transitions
    episodes: torch.Tensor  # [PHASES]
    successes: torch.Tensor  # [PHASES]

    @classmethod
    def empty(cls) -> "Reflection":
        return cls([], torch.zeros(0, PHASES, dtype=torch.float64), torch.zeros(PHASES), torch.zeros(PHASES),
                   torch.zeros(PHASES))

    def add_terms(self, phase: int, terms: dict[str, torch.Tensor]) -> None:
        if not self.names:
            self.names = list(terms)
            self.term_sums = torch.zeros(len(self.names), PHASES, dtype=torch.float64)
        for index, name in enumerate(self.names):
            value = terms.get(name)
            if value is not None:
                self.term_sums[index, phase] += float(value.double().sum())
        self.steps[phase] += len(next(iter(terms.values())))

    def term_means(self) -> torch.Tensor:
        return (self.term_sums / self.steps.double().clamp_min(1)).float()


class RunningScale:
    """The spread of the discounted return, for dividing rewards by (Welford over batches)."""

    def __init__(self, count: int, gamma: float):
        self.gamma, self.returns = gamma, torch.zeros(count)
        self.mean, self.var, self.n = 0.0, 1.0, 1e-4

    def __call__(self, reward: torch.Tensor, ended: torch.Tensor) -> torch.Tensor:
        self.returns = self.returns * self.gamma + reward
        batch_mean, batch_var, batch_n = float(self.returns.mean()), float(self.returns.var(unbiased=False)), \
            len(self.returns)
        total = self.n + batch_n
        delta = batch_mean - self.mean
        self.mean += delta * batch_n / total
        self.var = (self.var * self.n + batch_var * batch_n + delta ** 2 * self.n * batch_n / total) / total
        self.n = total
        self.returns = torch.where(ended, torch.zeros_like(self.returns), self.returns)
        return reward / math.sqrt(self.var + 1e-8)


def train_ppo(env: BatchEnv, actor: Actor, reward: Callable[..., dict[str, torch.Tensor]], total_steps: int,
              config: PPOConfig, generator: torch.Generator, reflection: Reflection,
              after_update: Callable[[int], bool] | None = None) -> int:
    """Train ``actor`` in place for ``total_steps`` transitions; ``reward(obs, action, next_obs, terminated)``
    gives the terms. ``after_update(steps_done)`` may stop training by returning False. Returns the steps taken."""
    critic = mlp(env.spec.obs_dim, 1)
    with torch.no_grad():
        actor.log_std.fill_(config.init_log_std)
    scale_obs = actor.obs_scale
    optimizer = torch.optim.Adam([*actor.parameters(), *critic.parameters()], lr=config.lr, eps=1e-5)
    n, horizon = config.envs, config.rollout
    updates = max(1, total_steps // (n * horizon))
    rescale = RunningScale(n, config.gamma)
    obs = env.observe()
    done_steps = 0
    for update in range(updates):
        phase = min(PHASES - 1, update * PHASES // updates)
        buffers = {k: [] for k in ("obs", "raw", "logp", "reward", "done", "value")}
        with torch.no_grad():
            for _ in range(horizon):
                mean = actor.mean(obs)
                std = actor.log_std.exp()
                raw = mean + std * torch.randn(mean.shape, generator=generator)
                logp = _log_prob(raw, mean, actor.log_std)
                action = raw.clamp(-1.0, 1.0) * env.spec.action_bound
                next_obs, terminated, truncated = env.step(action)
                terms = reward(obs, action, next_obs, terminated)
                reflection.add_terms(phase, terms)
                total = torch.stack(list(terms.values())).sum(dim=0)
                ended = terminated | truncated
                if bool(truncated.any()):  # the time limit is not the task's end: bootstrap from the value
                    total = total + config.gamma * truncated.float() * _value(critic, next_obs, scale_obs) \
                        * math.sqrt(rescale.var + 1e-8)
                value = _value(critic, obs, scale_obs)
                buffers["obs"].append(obs)
                buffers["raw"].append(raw)
                buffers["logp"].append(logp)
                buffers["reward"].append(rescale(total, ended).clamp(-config.reward_clip, config.reward_clip))
                buffers["done"].append(ended.float())
                buffers["value"].append(value)
                if bool(ended.any()):
                    reflection.episodes[phase] += float(ended.sum())
                    reflection.successes[phase] += float(env.succeeded(terminated, ended).sum())
                    env.reset(ended)
                obs = env.observe()
            last_value = _value(critic, obs, scale_obs)
        batch = {k: torch.stack(v) for k, v in buffers.items()}
        advantages, returns = _gae(batch, last_value, config)
        _update(actor, critic, optimizer, batch, advantages, returns, config, generator)
        done_steps += n * horizon
        if after_update is not None and not after_update(done_steps):
            break
    return done_steps


def _value(critic: nn.Module, obs: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return critic(obs / scale)[:, 0]


def _log_prob(raw: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    return (-0.5 * ((raw - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(dim=-1)


def _gae(batch: dict, last_value: torch.Tensor, config: PPOConfig) -> tuple[torch.Tensor, torch.Tensor]:
    rewards, dones, values = batch["reward"], batch["done"], batch["value"]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(len(rewards))):
        alive = 1.0 - dones[t]
        delta = rewards[t] + config.gamma * next_value * alive - values[t]
        running = delta + config.gamma * config.lam * alive * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values


def _update(actor: Actor, critic: nn.Module, optimizer: torch.optim.Optimizer, batch: dict,
            advantages: torch.Tensor, returns: torch.Tensor, config: PPOConfig, generator: torch.Generator) -> None:
    obs = batch["obs"].flatten(0, 1)
    raw, old_logp = batch["raw"].flatten(0, 1), batch["logp"].flatten(0, 1)
    advantages, returns = advantages.flatten(), returns.flatten()
    size = len(obs)
    minibatch = max(1, size // config.minibatches)
    for _ in range(config.epochs):
        order = torch.randperm(size, generator=generator)
        for start in range(0, size - minibatch + 1, minibatch):
            index = order[start:start + minibatch]
            adv = advantages[index]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            logp = _log_prob(raw[index], actor.mean(obs[index]), actor.log_std)
            ratio = (logp - old_logp[index]).exp()
            policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - config.clip, 1 + config.clip) * adv).mean()
            value_loss = 0.5 * (_value(critic, obs[index], actor.obs_scale) - returns[index]).pow(2).mean()
            entropy = actor.log_std.sum()  # the Gaussian's entropy up to a constant
            loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_([*actor.parameters(), *critic.parameters()], config.max_grad_norm)
            optimizer.step()
