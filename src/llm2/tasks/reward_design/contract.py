"""The reward-design contract: a reward function over a batch of transitions that returns its terms by name
(Eureka's components; the reward is their sum), and, optionally, a constant ``DOMAIN_RANDOMIZATION`` naming ranges
of physical parameters to train under (DrEureka), within the bounds the environment declares.

Everything here runs in the confined child (``check_contract``, ``call_reward``, ``randomization``): it calls the
candidate, and the trusted side only ever sees the numbers it produced.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

import torch

from llm2.task_api.base import CandidateError, Contract
from llm2.tasks.reward_design.envs import MOUNTAIN_CAR, EnvSpec

MAX_TERMS = 8
NAME_LENGTH = 24  # bytes of a term's name as the child hands it back
TERM_NAME = re.compile(rf"[A-Za-z_][A-Za-z0-9_]{{0,{NAME_LENGTH - 1}}}")
RANDOMIZATION_NAME = "DOMAIN_RANDOMIZATION"

CONTRACT = Contract(
    arguments=("obs", "action", "next_obs", "terminated"),
    example_name="reward",
    description=(
        "def reward(obs, action, next_obs, terminated) -> dict[str, torch.Tensor]\n"
        "    obs:        float32 tensor [batch, obs_dim], the observation before the step (gymnasium's own)\n"
        "    action:     float32 tensor [batch, 1], the action taken, already clipped to the action bounds\n"
        "    next_obs:   float32 tensor [batch, obs_dim], the observation after the step\n"
        "    terminated: bool tensor [batch], True where the step ended the episode (gymnasium's terminated)\n"
        f"    returns:    a dict of 1 to {MAX_TERMS} named reward terms, each a float tensor [batch]; the reward\n"
        "                the policy is trained on is their sum. Name the terms (letters, digits, _; up to\n"
        f"                {NAME_LENGTH} characters): you are told each term's mean over training.\n"
        f"Optional, beside the function: a constant {RANDOMIZATION_NAME} = {{\"name\": (low, high), ...}} of\n"
        "physical parameters to draw per training episode (domain randomisation), within the declared bounds."),
)


def call_reward(fn: Callable[..., Any], obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor,
                terminated: torch.Tensor, where: str, stage: str) -> dict[str, torch.Tensor]:
    """The candidate's terms for one batch, checked: a dict of named float tensors [batch], finite."""
    batch = obs.shape[0]
    with torch.no_grad():
        try:
            terms = fn(obs.clone(), action.clone(), next_obs.clone(), terminated.clone())
        except CandidateError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of candidate code is the candidate's
            raise CandidateError(f"the reward raised {type(exc).__name__} {where}: {str(exc)[:300]}",
                                 stage=stage) from None
    if not isinstance(terms, dict) or not 1 <= len(terms) <= MAX_TERMS:
        raise CandidateError(f"the reward must return a dict of 1 to {MAX_TERMS} named terms {where}, not "
                             f"{_kind(terms)}", stage=stage)
    checked = {}
    for name, value in terms.items():
        if not isinstance(name, str) or not TERM_NAME.fullmatch(name):
            raise CandidateError(f"a term's name must be letters, digits and _ (up to {NAME_LENGTH}), starting "
                                 f"with a letter or _, {where}", stage=stage)
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise CandidateError(f"term {name!r} is not a float tensor {where} ({_kind(value)})", stage=stage)
        if tuple(value.shape) != (batch,):
            raise CandidateError(f"term {name!r} has shape {list(value.shape)} {where}; expected [{batch}]",
                                 stage=stage)
        if not bool(torch.isfinite(value).all()):
            raise CandidateError(f"term {name!r} is not finite {where}", stage=stage)
        checked[name] = value.detach().float()
    return checked


def _kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {list(value.shape)}"
    return f"a {type(value).__name__}"


def randomization(fn: Callable[..., Any], spec: EnvSpec) -> dict[str, tuple[float, float]]:
    """The candidate's ``DOMAIN_RANDOMIZATION`` (empty when it has none), checked against the declared bounds."""
    ranges = getattr(fn, "__globals__", {}).get(RANDOMIZATION_NAME)
    if ranges is None:
        return {}
    if not isinstance(ranges, dict) or len(ranges) > len(spec.parameters):
        raise CandidateError(f"{RANDOMIZATION_NAME} must be a dict of parameter name -> (low, high)",
                             stage="contract")
    known = {p.name: p for p in spec.parameters}
    checked = {}
    for name, bounds in ranges.items():
        if name not in known:
            raise CandidateError(f"{RANDOMIZATION_NAME} names {str(name)[:40]!r}; {spec.name}'s parameters are "
                                 f"{', '.join(known)}", stage="contract")
        if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                        for v in bounds)):
            raise CandidateError(f"{RANDOMIZATION_NAME}[{name!r}] must be two numbers (low, high)", stage="contract")
        low, high = float(bounds[0]), float(bounds[1])
        allowed = known[name].bounds
        if not allowed[0] <= low <= high <= allowed[1]:
            raise CandidateError(f"{RANDOMIZATION_NAME}[{name!r}] = ({low:g}, {high:g}) is outside the declared "
                                 f"bounds [{allowed[0]:g}, {allowed[1]:g}] (or low > high)", stage="contract")
        checked[name] = (low, high)
    return checked


def check_reward_contract(fn: Callable[..., Any], spec: EnvSpec = MOUNTAIN_CAR) -> None:
    """Batches of 8 and 1 of random transitions (some terminated): the terms' form, and the randomisation."""
    generator = torch.Generator().manual_seed(0)
    for batch in (8, 1):
        obs = torch.randn(batch, spec.obs_dim, generator=generator) * torch.tensor(spec.obs_scale)
        next_obs = obs + 0.1 * torch.randn(batch, spec.obs_dim, generator=generator)
        action = (torch.rand(batch, 1, generator=generator) * 2 - 1) * spec.action_bound
        terminated = torch.arange(batch) % 3 == 0
        call_reward(fn, obs, action, next_obs, terminated, f"on a batch of {batch} random transitions", "contract")
    randomization(fn, spec)
