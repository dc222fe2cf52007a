"""The inner loop, inside the candidate's confined process: PPO on a batch of environments with the candidate's
reward (and its domain randomisation), from a fresh policy; back come the policy's weights and what training saw
(each reward term's mean and the success rate per tenth of training), as tensors."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from llm2.task_api.base import CandidateError, EvalSetting, TensorSpec, TrainOutput
from llm2.tasks.reward_design.contract import MAX_TERMS, NAME_LENGTH, call_reward, randomization
from llm2.tasks.reward_design.envs import ENVS, BatchEnv, EnvSpec
from llm2.tasks.reward_design.policy import Actor, actor_state
from llm2.tasks.reward_design.ppo import PHASES, PPO_CONFIGS, Reflection, train_ppo
from llm2.tasks.reward_design.settings import RewardDesignSettings
from llm2.task_api.threads import single_thread


@dataclass(frozen=True)
class TrainingData:
    """All the training side knows: the environment (nothing held out lives here)."""

    env: str

    @property
    def spec(self) -> EnvSpec:
        return ENVS[self.env]


def output_spec(spec: EnvSpec) -> dict[str, TensorSpec]:
    shapes = {name: tuple(t.shape) for name, t in actor_state(Actor(spec)).items()}
    shapes.update({"stats.term_names": (MAX_TERMS, NAME_LENGTH), "stats.term_means": (MAX_TERMS, PHASES),
                   "stats.episodes": (PHASES,), "stats.successes": (PHASES,)})
    return {name: TensorSpec(shape, "uint8" if name == "stats.term_names" else "float32")
            for name, shape in shapes.items()}


def pack(actor: Actor, reflection: Reflection) -> dict[str, torch.Tensor]:
    names = torch.zeros(MAX_TERMS, NAME_LENGTH, dtype=torch.uint8)
    means = torch.zeros(MAX_TERMS, PHASES)
    for index, name in enumerate(reflection.names[:MAX_TERMS]):
        encoded = name.encode("ascii")[:NAME_LENGTH]
        names[index, :len(encoded)] = torch.tensor(list(encoded), dtype=torch.uint8)
    term_means = reflection.term_means()
    means[:len(term_means)] = torch.nan_to_num(term_means[:MAX_TERMS], nan=0.0, posinf=0.0, neginf=0.0)
    return {**actor_state(actor), "stats.term_names": names, "stats.term_means": means,
            "stats.episodes": reflection.episodes.float().clone(),
            "stats.successes": reflection.successes.float().clone()}


def success_curve(reflection: Reflection) -> list[float]:
    """The share of the episodes ending in each tenth that succeeded (0 where none ended: the trace is a list of
    numbers)."""
    return (reflection.successes / reflection.episodes.clamp_min(1)).tolist()


def train_policy(fn: Callable[..., Any], data: TrainingData, setting: EvalSetting, probe_fraction: float,
                 checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
    settings: RewardDesignSettings = setting.task
    spec = data.spec
    ranges = randomization(fn, spec)
    config = replace(PPO_CONFIGS[spec.name], envs=settings.envs)
    total = max(1, round(setting.budget * settings.total_steps))
    probe_step = max(1, math.ceil(probe_fraction * total))
    reflection = Reflection.empty()
    steps_seen = [0]

    def reward(obs, action, next_obs, terminated):
        steps_seen[0] += 1
        return call_reward(fn, obs, action, next_obs, terminated, f"at training step {steps_seen[0]}", "train")

    stop_reason: list[str | None] = [None]
    probed = [checkpoint is None]

    def after_update(done: int) -> bool:
        if not all(bool(torch.isfinite(p).all()) for p in actor.parameters()):
            stop_reason[0] = f"the policy's weights became non-finite by step {done} of {total}"
            return False
        if not probed[0] and done >= probe_step:
            probed[0] = True
            if not checkpoint(TrainOutput(pack(actor, reflection), success_curve(reflection), done)):
                stop_reason[0] = f"stopped by the probe checkpoint after {done} of {total} steps"
                return False
        return True

    with single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(setting.seed)  # the policy's initial weights
        generator = torch.Generator().manual_seed(setting.seed)  # starts, dynamics, exploration, minibatches
        actor = Actor(spec)
        env = BatchEnv(spec, config.envs, generator, ranges)
        try:
            done = train_ppo(env, actor, reward, total, config, generator, reflection, after_update)
        except CandidateError:
            raise
        except (RuntimeError, ValueError) as exc:  # e.g. a reward so large that the update overflows
            stop_reason[0] = stop_reason[0] or f"training failed: {type(exc).__name__}: {str(exc)[:200]}"
            done = 0
    return TrainOutput(pack(actor, reflection), success_curve(reflection), done, stop_reason[0])
