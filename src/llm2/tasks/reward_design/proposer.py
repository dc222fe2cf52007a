"""The reward-design task's offline proposer: a small grammar of reward terms (goal bonus, action cost, potential-based
shaping on energy or height, progress, a velocity bonus, a time penalty; for the pendulum: upright bonus, angle,
speed and torque costs, height shaping), weighted and summed, optionally with domain-randomisation ranges. It
mutates and mixes the best rewards so far; no language model needed.

Every reply's code carries its spec on a ``# llm2-spec:`` line, which is how parents are read back from the
history; the baselines are known by name. The environment is read from the run's setting text. Same seed and
history, same reply.
"""

from __future__ import annotations

import json
import math
import random
import re

from typing import Mapping

from llm2.proposers.base import ProposalRequest, ScoredCandidate
from llm2.proposers.offline import OfflineProposer, Parent, SpecGrammar, Variation
from llm2.tasks.reward_design.envs import ENVS

# term -> (expression of w and the prepared names, default weight, lowest, highest)
TERMS = {
    "mountain_car": {
        "goal": ("{w} * done", 100.0, 1.0, 1000.0),
        "action_cost": ("-{w} * a ** 2", 0.1, 0.001, 1.0),
        "energy_shaping": ("{w} * (gamma * energy(x2, v2) * (1 - done) - energy(x, v))", 25000.0, 1000.0, 1e5),
        "height_shaping": ("{w} * (gamma * height(x2) * (1 - done) - height(x))", 30000.0, 1000.0, 1e5),
        "progress": ("{w} * (x2 - x)", 10.0, 0.1, 1000.0),
        "speed": ("{w} * v2.abs()", 10.0, 0.1, 1000.0),
        "time_penalty": ("-{w} * torch.ones_like(a)", 0.1, 0.001, 10.0),
    },
    "pendulum": {
        "upright": ("{w} * (th2.abs() < 0.3).float()", 1.0, 0.01, 100.0),
        "angle_cost": ("-{w} * th ** 2", 1.0, 0.01, 10.0),
        "speed_cost": ("-{w} * obs[:, 2] ** 2", 0.1, 0.001, 1.0),
        "torque_cost": ("-{w} * a ** 2", 0.001, 1e-5, 0.1),
        "height_shaping": ("{w} * (gamma * next_obs[:, 0] - obs[:, 0])", 10.0, 0.1, 100.0),
    },
}
PREAMBLE = {
    "mountain_car": ["    x, v = obs[:, 0], obs[:, 1]", "    x2, v2 = next_obs[:, 0], next_obs[:, 1]",
                     "    done = terminated.float()"],
    "pendulum": ["    th = torch.atan2(obs[:, 1], obs[:, 0])", "    th2 = torch.atan2(next_obs[:, 1], next_obs[:, 0])"],
}
HELPERS = {  # module-level helpers the mountain car's shaping terms use
    "energy_shaping": ("def energy(x, v):\n"
                       "    return 0.0025 / 3 * (torch.sin(3 * x) + 1) + 0.5 * v ** 2\n"),
    "height_shaping": ("def height(x):\n"
                       "    return 0.0025 / 3 * (torch.sin(3 * x) + 1)\n"),
}
BASELINE_SPECS = {
    "mountain_car": {
        "environment": {"terms": [["goal", 100.0], ["action_cost", 0.1]], "dr": {}},
        "sparse": {"terms": [["goal", 1.0]], "dr": {}},
        "shaped": {"terms": [["goal", 100.0], ["action_cost", 0.1], ["energy_shaping", 25000.0]], "dr": {}},
    },
    "pendulum": {
        "environment": {"terms": [["angle_cost", 1.0], ["speed_cost", 0.1], ["torque_cost", 0.001]], "dr": {}},
        "sparse": {"terms": [["upright", 1.0]], "dr": {}},
        "shaped": {"terms": [["upright", 1.0], ["height_shaping", 10.0], ["torque_cost", 0.001]], "dr": {}},
    },
}
SPEC_LINE = re.compile(r"^\s*# llm2-spec: (\{.*\})\s*$", re.MULTILINE)
SETTING = re.compile(r"\b(MountainCarContinuous-v0|Pendulum-v1), [\d,]+ PPO steps")
MAX_TERMS = 5


def _round(x: float) -> float:
    return float(f"{x:.3g}")


def env_of(request: ProposalRequest) -> str:
    """The run's environment, from the setting text the conversation states (mountain car when none)."""
    for message in request.messages:
        found = SETTING.search(message.content)
        if found:
            return next(name for name, spec in ENVS.items() if spec.gym_id == found.group(1))
    return "mountain_car"


def normalise(spec: dict) -> dict:
    merged: dict[str, float] = {}
    for name, weight in spec["terms"]:
        merged[name] = merged.get(name, 0.0) + weight
    terms = [[name, _round(w)] for name, w in merged.items() if w > 0][:MAX_TERMS]
    dr = {name: [_round(low), _round(high)] for name, (low, high) in sorted(spec.get("dr", {}).items())}
    return {"terms": terms, "dr": dr}


def read_spec(env: str, name: str, code: str) -> dict | None:
    """The spec of a baseline (by name) or of this proposer's own code; None for anything else."""
    if name in BASELINE_SPECS[env]:
        return BASELINE_SPECS[env][name]
    found = SPEC_LINE.search(code or "")
    try:
        spec = json.loads(found.group(1)) if found else None
        valid = (1 <= len(spec["terms"]) <= MAX_TERMS
                 and all(t in TERMS[env] and isinstance(w, (int, float)) and w > 0 for t, w in spec["terms"])
                 and all(p in {q.name for q in ENVS[env].parameters} for p in spec["dr"]))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return spec if valid else None


def describe(spec: dict) -> str:
    text = " + ".join(f"{w:g}·{name}" for name, w in spec["terms"])
    if spec["dr"]:
        text += "; randomising " + ", ".join(f"{p} in [{lo:g}, {hi:g}]" for p, (lo, hi) in spec["dr"].items())
    return text


def spec_name(spec: dict) -> str:
    name = "_".join(t for t, _ in spec["terms"])
    return (name + ("_dr" if spec["dr"] else ""))[:60]


def render(env: str, spec: dict) -> str:
    """Readable, self-contained code in the contract's form, its spec on the second line of the function."""
    lines = []
    if spec["dr"]:
        ranges = ", ".join(f'"{p}": ({lo!r}, {hi!r})' for p, (lo, hi) in spec["dr"].items())
        lines.append(f"DOMAIN_RANDOMIZATION = {{{ranges}}}\n")
    lines += [HELPERS[t] for t, _ in spec["terms"] if t in HELPERS]
    lines += ["def reward(obs, action, next_obs, terminated):", f"    # llm2-spec: {json.dumps(spec)}",
              f"    # {describe(spec)}", "    gamma = 0.99", "    a = action[:, 0]", *PREAMBLE[env], "    return {"]
    for name, weight in spec["terms"]:
        lines.append(f'        "{name}": ' + TERMS[env][name][0].format(w=f"{weight:g}") + ",")
    return "\n".join(lines + ["    }"]) + "\n"


MOVE_WEIGHTS = {"tune": 0.35, "add": 0.25, "drop": 0.1, "mix": 0.15, "randomise": 0.15}


class RewardDesignOfflineProposer(OfflineProposer):
    def __init__(self, seed: int = 0):
        super().__init__(RewardGrammar(), seed)


class RewardGrammar(SpecGrammar):
    """Reward specs (weighted terms, domain-randomisation ranges) as the genome of an offline proposer; the context
    is the run's environment."""

    name = "reward-design-offline"
    move_weights = MOVE_WEIGHTS
    normalise = staticmethod(normalise)
    describe = staticmethod(describe)
    spec_name = staticmethod(spec_name)

    def context(self, request: ProposalRequest) -> str:
        return env_of(request)

    def read(self, candidate: ScoredCandidate, env: str) -> dict | None:
        return read_spec(env, candidate.name, candidate.code)

    def acceptable(self, spec: dict) -> bool:
        return bool(spec["terms"])

    def vary(self, rng: random.Random, parents: list[Parent], env: str,
             weights: Mapping[str, float]) -> Variation:
        move, what, spec = self._variation(env, rng, parents, weights)
        return Variation(spec, move, (), what)

    def render(self, spec: dict, env: str) -> str:
        return render(env, spec)

    def _variation(self, env: str, rng: random.Random, parents: list[Parent],
                   weights: Mapping[str, float]) -> tuple[str, str, dict]:
        """(the move made, what it did, the new spec)."""
        terms = TERMS[env]
        if not parents:
            picked = rng.sample(sorted(terms), 2)
            return ("fresh", f"No scored reward to build on yet: starting from {' and '.join(picked)}.",
                    {"terms": [[t, terms[t][1]] for t in picked], "dr": {}})
        parent = parents[min(rng.randrange(len(parents)), rng.randrange(len(parents)))]
        fitness, name, spec = parent.fitness, parent.name, json.loads(json.dumps(parent.genome))  # a copy to change
        origin = f"{name} (fitness {fitness:.3f})"
        move = rng.choices(list(weights), list(weights.values()))[0]
        if move == "tune":
            term = rng.choice(spec["terms"])
            _, _, low, high = terms[term[0]]
            old, term[1] = term[1], min(high, max(low, term[1] * math.exp(rng.gauss(0, 0.7))))
            return "tune", f"Tuning {origin}: the weight of {term[0]} from {old:g} to {term[1]:.3g}.", spec
        if move == "add" and len(spec["terms"]) < MAX_TERMS:
            missing = sorted(set(terms) - {t for t, _ in spec["terms"]})
            if missing:
                added = rng.choice(missing)
                spec["terms"].append([added, terms[added][1]])
                return "add", f"Adding {added} to {origin}.", spec
        if move == "drop" and len(spec["terms"]) > 1:
            dropped = spec["terms"].pop(rng.randrange(len(spec["terms"])))
            return "drop", f"Dropping {dropped[0]} from {origin}.", spec
        if move == "mix" and len(parents) > 1:
            mate = rng.choice([p for p in parents if p.name != name])
            other_fitness, other_name, other = mate.fitness, mate.name, mate.genome
            mixed = {"terms": spec["terms"] + [[t, w] for t, w in other["terms"]
                                               if t not in {s for s, _ in spec["terms"]}], "dr": spec["dr"]}
            return ("mix", f"Joining the terms of {origin} and {other_name} (fitness {other_fitness:.3f}).", mixed)
        parameter = rng.choice(ENVS[env].parameters)
        low, high = parameter.bounds
        width = rng.choice((0.25, 0.5, 1.0))
        centre = parameter.nominal
        span = width * (high - low) / 2
        spec.setdefault("dr", {})[parameter.name] = [max(low, centre - span), min(high, centre + span)]
        return ("randomise", f"Randomising {parameter.name} around its nominal {centre:g} while training {origin}, "
                "so the policy "
                "copes with dynamics it will be scored on.", spec)
