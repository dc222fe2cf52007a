"""The known rewards, each in the contract's form (the same text is shown to the proposer and measured): the
environment's own reward, a sparse success-only reward, and a human-written shaped reward from the literature.

Each works for both environments (the observation's width tells them apart: 2 for MountainCarContinuous, 3 for
Pendulum). ``gamma`` in the shaped reward is the discount PPO trains with on that environment, as potential-based
shaping requires. The contract hands a reward the clipped action, so ``environment`` differs from gymnasium's
mountain car, which penalises the unclipped one, where an action leaves [-1, 1].
"""

from __future__ import annotations

import inspect
import math  # noqa: F401 - part of the contract's namespace
import textwrap

import torch  # noqa: F401 - part of the contract's namespace

from llm2.task_api.base import Baseline


def environment(obs, action, next_obs, terminated):
    a = action[:, 0]
    if obs.shape[1] == 2:  # MountainCarContinuous-v0: +100 at the flag, minus 0.1 a² every step
        return {"goal": 100.0 * terminated.float(), "action_cost": -0.1 * a ** 2}
    theta = torch.atan2(obs[:, 1], obs[:, 0])  # Pendulum-v1: minus the cost of the state before the step
    return {"angle": -theta ** 2, "speed": -0.1 * obs[:, 2] ** 2, "torque": -0.001 * a ** 2}


def sparse(obs, action, next_obs, terminated):
    if obs.shape[1] == 2:  # 1 at the flag, nothing else
        return {"success": terminated.float()}
    theta = torch.atan2(next_obs[:, 1], next_obs[:, 0])  # 1 while within 0.3 rad of upright
    return {"upright": (theta.abs() < 0.3).float()}


def shaped(obs, action, next_obs, terminated):
    a = action[:, 0]
    if obs.shape[1] == 2:
        gamma = 0.99
        def potential(s):  # mechanical energy (the slope's height integral plus kinetic), 0 at rest in the valley
            height = 0.0025 / 3 * (torch.sin(3 * s[:, 0]) + 1)
            return 25000.0 * (height + 0.5 * s[:, 1] ** 2)
        shaping = gamma * potential(next_obs) * (~terminated).float() - potential(obs)
        return {"goal": 100.0 * terminated.float(), "action_cost": -0.1 * a ** 2, "energy_shaping": shaping}

    def potential(s):  # minus the distance from the upright's energy: ½θ̇² + (3g/2l)·cos θ for m = l = 1, g = 10
        return -0.5 * (0.5 * s[:, 2] ** 2 + 15.0 * s[:, 0] - 15.0).abs()
    gamma = 0.9
    theta = torch.atan2(obs[:, 1], obs[:, 0])
    return {"angle": -theta ** 2, "speed": -0.1 * obs[:, 2] ** 2, "torque": -0.001 * a ** 2,
            "energy_shaping": gamma * potential(next_obs) - potential(obs)}


_ENTRIES = (
    (environment, "gymnasium's reward: MountainCar +100 at the flag − 0.1a²; "
                  "Pendulum −(θ² + 0.1θ̇² + 0.001u²)",
     "gymnasium's classic-control environments (Moore 1990; the OpenAI Gym pendulum)"),
    (sparse, "1 when the true goal is met (at the flag / while upright), else 0",
     "the success-only reward, as Eureka's sparse baseline (Ma et al. 2023)"),
    (shaped, "environment's reward + γΦ(s') − Φ(s), Φ = mechanical energy (MountainCar) or −|E − E_upright| "
             "(Pendulum)",
     "potential-based shaping, Ng, Harada & Russell 1999, Policy invariance under reward transformations, with "
     "energy potentials (the pendulum's after the energy-based swing-up of Åström & Furuta 2000)"),
)

FUNCTIONS = {fn.__name__: fn for fn, _, _ in _ENTRIES}
BASELINES: dict[str, Baseline] = {
    fn.__name__: Baseline(fn.__name__, textwrap.dedent(inspect.getsource(fn)), formula, source)
    for fn, formula, source in _ENTRIES
}
