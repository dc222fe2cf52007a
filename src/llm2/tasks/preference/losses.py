"""The known preference losses as plain functions of the preference contract (docs/tasks.md lists their sources).

Each function is self-contained (only torch, F and math; constants inside), because its source text is also the
baseline code shown to the proposer: ``llm2.tasks.preference.catalog`` derives that text from these very functions.
Notation: r_c, r_r = policy minus reference log-probs; rho = r_c - r_r; x = beta * rho; tau = 0.05.
Batch statistics (mean, var, std) are over the pairs of the batch and use the population form (unbiased=False),
so a batch of one pair gives a spread of 0 instead of NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def dpo(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = beta * rho
    return -F.logsigmoid(x)


def hinge(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = beta * rho
    return torch.relu(1.0 - x)


def ipo(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    return (rho - 1.0 / (2.0 * beta)) ** 2


def cdpo(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    epsilon = 0.1  # probability that a label is flipped
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = beta * rho
    return -(1.0 - epsilon) * F.logsigmoid(x) - epsilon * F.logsigmoid(-x)


def robust(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    epsilon = 0.1
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = beta * rho
    return (-(1.0 - epsilon) * F.logsigmoid(x) + epsilon * F.logsigmoid(-x)) / (1.0 - 2.0 * epsilon)


def exo_pair(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    epsilon = 1e-3
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = beta * rho
    return (torch.sigmoid(x) * (F.logsigmoid(x) - math.log(1.0 - epsilon))
            + torch.sigmoid(-x) * (F.logsigmoid(-x) - math.log(epsilon)))


def nca_pair(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    chosen_reward = beta * (policy_chosen_logps - reference_chosen_logps)
    rejected_reward = beta * (policy_rejected_logps - reference_rejected_logps)
    return (-F.logsigmoid(chosen_reward)
            - 0.5 * F.logsigmoid(-chosen_reward)
            - 0.5 * F.logsigmoid(-rejected_reward))


def bco_pair(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    chosen_reward = beta * (policy_chosen_logps - reference_chosen_logps)
    rejected_reward = beta * (policy_rejected_logps - reference_rejected_logps)
    return -F.logsigmoid(chosen_reward) - F.logsigmoid(-rejected_reward)


def sppo_hard(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    chosen_ratio = policy_chosen_logps - reference_chosen_logps
    rejected_ratio = policy_rejected_logps - reference_rejected_logps
    return (chosen_ratio - 0.5 / beta) ** 2 + (rejected_ratio + 0.5 / beta) ** 2


def apo_zero(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    chosen_reward = beta * (policy_chosen_logps - reference_chosen_logps)
    rejected_reward = beta * (policy_rejected_logps - reference_rejected_logps)
    return (1.0 - torch.sigmoid(chosen_reward)) + torch.sigmoid(rejected_reward)


def apo_down(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    chosen_reward = beta * (policy_chosen_logps - reference_chosen_logps)
    rejected_reward = beta * (policy_rejected_logps - reference_rejected_logps)
    return torch.sigmoid(chosen_reward) + (1.0 - torch.sigmoid(chosen_reward - rejected_reward))


def kto_pair(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    chosen_ratio = policy_chosen_logps - reference_chosen_logps
    rejected_ratio = policy_rejected_logps - reference_rejected_logps
    # Batch estimates of the KL terms, floored at zero.
    chosen_kl = chosen_ratio.mean().clamp(min=0)
    rejected_kl = rejected_ratio.mean().clamp(min=0)
    return ((1.0 - torch.sigmoid(beta * (chosen_ratio - rejected_kl)))
            + (1.0 - torch.sigmoid(beta * (chosen_kl - rejected_ratio))))


def discopop(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    tau = 0.05
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = beta * rho
    logistic_part = -F.logsigmoid(x)
    # sigmoid(x / tau) * exp(-x), in log space so that it stays finite for very negative x.
    exponential_part = torch.exp(F.logsigmoid(x / tau) - x)
    return torch.sigmoid(-x / tau) * logistic_part + exponential_part


def cell(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = beta * rho
    return 0.5 * -F.logsigmoid(x) + 0.5 * torch.exp(-x)


def padll(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = beta * rho
    # Half the weight on pairs the policy already ranks below the reference.
    weight = 0.9 * (1.0 - 0.5 * (rho < 0).to(x.dtype))
    return weight * -F.logsigmoid(x)


def aql(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    tau = 0.05
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = beta * rho
    margin = 0.5 + 0.01 * (torch.sigmoid((x / tau).mean()) - 0.5)
    mix = torch.sigmoid(tau * margin - x)
    return mix * -F.logsigmoid(x) + (1.0 - mix) * torch.relu(1.0 - x)


def aqfl(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    tau = 0.05
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = beta * rho
    scaled = x / tau
    spread = scaled.std(unbiased=False)  # population std: 0 for a single pair, not NaN
    margin1 = spread * torch.sigmoid(-scaled).mean()
    margin2 = margin1 + 0.05 * (torch.sigmoid(scaled.mean()) - margin1)
    mix = torch.sigmoid(0.1 * torch.abs(scaled - margin2))
    return mix * -F.logsigmoid(x) + (1.0 - mix) * torch.relu(1.0 - x)


def dbaql(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    tau = 0.05
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = beta * rho
    mix = torch.sigmoid((x / tau).var(unbiased=False))  # population variance: 0 for a single pair, not NaN
    return mix * -F.logsigmoid(x / 0.9) + (1.0 - mix) * torch.exp(-0.9 * x)


def pfl(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    tau = 0.05
    rho = (policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps)
    x = beta * rho
    policy_prefers_chosen = policy_chosen_logps > policy_rejected_logps
    return torch.where(policy_prefers_chosen, 0.5 * -F.logsigmoid(x / tau), 2.0 * torch.relu(1.0 - x / tau))
