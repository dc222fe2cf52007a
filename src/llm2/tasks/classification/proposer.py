"""The classification task's offline proposer: mutates and mixes known loss pieces taken from the best candidates
so far (no language model needed; for tests, demos and a baseline search).

A loss is a spec: a temperature on the logits and a weighted sum of pieces (cross-entropy, label smoothing ε,
focal γ, squared error on the probabilities, generalized cross-entropy q, MAE). Every reply's code carries its spec
on a ``# llm2-spec:`` line, which is how parents are read back from the history, after a resume as well; the
baselines are known by name. Same seed and history, same reply.
"""

from __future__ import annotations

import json
import math
import random
import re

from typing import Mapping

from llm2.proposers.base import ScoredCandidate
from llm2.proposers.offline import OfflineProposer, Parent, SpecGrammar, Variation

PARAMETERS = {"ls": ("ε", 0.01, 0.5), "focal": ("γ", 0.25, 5.0), "gce": ("q", 0.1, 1.0)}  # name, low, high
PIECES = ("ce", "ls", "focal", "mse", "gce", "mae")
DEFAULT_PARAMETER = {"ls": 0.1, "focal": 2.0, "gce": 0.7}
EXPRESSIONS = {  # per-example losses from log_p [batch, classes], log_p_true and p_true [batch]
    "ce": "-log_p_true",
    "ls": "-(1 - {x}) * log_p_true - {x} * log_p.mean(dim=-1)",
    "focal": "-(1 - p_true).clamp_min(1e-7) ** {x} * log_p_true",
    "mse": "(log_p.exp() ** 2).sum(dim=-1) - 2 * p_true + 1",
    "gce": "(1 - p_true.clamp_min(1e-7) ** {x}) / {x}",
    "mae": "2 * (1 - p_true)",
}
BASELINE_SPECS = {
    "cross_entropy": {"temperature": 1.0, "terms": [[1.0, "ce", None]]},
    "label_smoothing": {"temperature": 1.0, "terms": [[1.0, "ls", 0.1]]},
    "focal": {"temperature": 1.0, "terms": [[1.0, "focal", 2.0]]},
    "squared_error": {"temperature": 1.0, "terms": [[1.0, "mse", None]]},
    "generalized_cross_entropy": {"temperature": 1.0, "terms": [[1.0, "gce", 0.7]]},
    "symmetric_cross_entropy": {"temperature": 1.0, "terms": [[0.1, "ce", None], [2.0, "mae", None]]},
    "mean_absolute_error": {"temperature": 1.0, "terms": [[1.0, "mae", None]]},
}
SPEC_LINE = re.compile(r"^\s*# llm2-spec: (\{.*\})\s*$", re.MULTILINE)
MAX_TERMS = 3


def _round(x: float) -> float:
    return float(f"{x:.3g}")


def normalise(spec: dict) -> dict:
    """Merge equal pieces, drop the lightest beyond MAX_TERMS, round every number to 3 significant digits."""
    merged: dict[tuple, float] = {}
    for weight, kind, x in spec["terms"]:
        key = (kind, None if x is None else _round(x))
        merged[key] = merged.get(key, 0.0) + weight
    terms = sorted(((w, k, x) for (k, x), w in merged.items() if w > 1e-3), key=lambda t: -t[0])[:MAX_TERMS]
    return {"temperature": _round(spec["temperature"]), "terms": [[_round(w), k, x] for w, k, x in terms]}


def _valid_parameter(kind: str, x: object) -> bool:
    if kind not in PARAMETERS:
        return x is None
    return isinstance(x, (int, float)) and PARAMETERS[kind][1] <= x <= PARAMETERS[kind][2]


def read_spec(name: str, code: str) -> dict | None:
    """The spec of a baseline (by name) or of this proposer's own code (its spec line); None for anything else."""
    if name in BASELINE_SPECS:
        return BASELINE_SPECS[name]
    found = SPEC_LINE.search(code or "")
    try:
        spec = json.loads(found.group(1)) if found else None
        terms = spec["terms"]
        valid = 0.1 <= float(spec["temperature"]) <= 10 and 1 <= len(terms) <= MAX_TERMS and all(
            k in PIECES and isinstance(w, (int, float)) and w > 0 and _valid_parameter(k, x) for w, k, x in terms)
    except (ValueError, TypeError, KeyError):
        return None
    return spec if valid else None


def describe(spec: dict) -> str:
    parts = [(f"{w:g} × " if len(spec["terms"]) > 1 else "") + k.upper()
             + (f" ({PARAMETERS[k][0]} = {x:g})" if x is not None else "") for w, k, x in spec["terms"]]
    temperature = f", on logits / {spec['temperature']:g}" if spec["temperature"] != 1 else ""
    return " + ".join(parts) + temperature


def spec_name(spec: dict) -> str:
    tokens = []
    for w, k, x in spec["terms"]:
        tokens.append(k + (f"_{PARAMETERS[k][0]}{x:g}" if x is not None else "")
                      + (f"_x{w:g}" if len(spec["terms"]) > 1 else ""))
    if spec["temperature"] != 1:
        tokens.append(f"t{spec['temperature']:g}")
    return "_".join(tokens).replace(".", "p").replace("ε", "eps").replace("γ", "g")


def render(spec: dict) -> str:
    """Readable, self-contained code in the contract's form, its spec on the second line."""
    t = spec["temperature"]
    lines = ["def loss(logits, targets):", f"    # llm2-spec: {json.dumps(spec)}", f"    # {describe(spec)}",
             f"    log_p = F.log_softmax(logits{f' / {t:g}' if t != 1 else ''}, dim=-1)",
             "    log_p_true = log_p.gather(1, targets[:, None]).squeeze(1)",
             "    p_true = log_p_true.exp()"]
    names = []
    for index, (w, k, x) in enumerate(spec["terms"]):
        names.append(k if k not in [n.split("_")[0] for n in names] else f"{k}_{index}")
        lines.append(f"    {names[-1]} = " + EXPRESSIONS[k].format(x=f"{x:g}" if x is not None else ""))
    total = " + ".join(f"{w:g} * {n}" if w != 1 else n for (w, _, _), n in zip(spec["terms"], names))
    return "\n".join(lines + [f"    return {total}"]) + "\n"


MOVE_WEIGHTS = {"mix": 0.35, "tune": 0.35, "add": 0.15, "drop": 0.05, "temperature": 0.1}


class ClassificationOfflineProposer(OfflineProposer):
    def __init__(self, seed: int = 0):
        super().__init__(ClassificationGrammar(), seed)


class ClassificationGrammar(SpecGrammar):
    """Loss specs (a temperature and a weighted sum of known pieces) as the genome of an offline proposer."""

    name = "classification-offline"
    move_weights = MOVE_WEIGHTS
    normalise = staticmethod(normalise)
    describe = staticmethod(describe)
    spec_name = staticmethod(spec_name)

    def read(self, candidate: ScoredCandidate, context: None) -> dict | None:
        return read_spec(candidate.name, candidate.code)

    def vary(self, rng: random.Random, parents: list[Parent], context: None,
             weights: Mapping[str, float]) -> Variation:
        move, what, spec = self._variation(rng, parents, weights)
        return Variation(spec, move, (), what)

    def render(self, spec: dict, context: None) -> str:
        return render(spec)

    def _variation(self, rng: random.Random, parents: list[Parent],
                   weights: Mapping[str, float]) -> tuple[str, str, dict]:
        """(the move made, what it did, the new spec)."""
        if not parents:
            kind = rng.choice(PIECES)
            return ("fresh", f"No scored loss to build on yet: starting from {kind.upper()}.",
                    {"temperature": 1.0, "terms": [[1.0, kind, DEFAULT_PARAMETER.get(kind)]]})
        parent = parents[min(rng.randrange(len(parents)), rng.randrange(len(parents)))]  # the better of two draws
        fitness, name, spec = parent.fitness, parent.name, json.loads(json.dumps(parent.genome))  # a copy to change
        origin = f"{name} (fitness {fitness:.3f})"
        move = rng.choices(list(weights), list(weights.values()))[0]
        tunable = [t for t in spec["terms"] if t[2] is not None]
        if move == "mix" and len(parents) > 1:
            mate = rng.choice([p for p in parents if p.name != name])
            other_fitness, other_name, other = mate.fitness, mate.name, mate.genome
            w = rng.choice((0.3, 0.5, 0.7))
            terms = [[w * t[0], t[1], t[2]] for t in spec["terms"]] + \
                    [[(1 - w) * t[0], t[1], t[2]] for t in other["terms"]]
            return ("mix", f"A convex mixture of two of the best so far, {w:g} × {origin} and {1 - w:g} × "
                    f"{other_name} "
                    f"(fitness {other_fitness:.3f}): their strengths may add up.",
                    {"temperature": spec["temperature"], "terms": terms})
        if move == "tune" and tunable:
            term = rng.choice(tunable)
            symbol, low, high = PARAMETERS[term[1]]
            old, term[2] = term[2], min(high, max(low, term[2] * math.exp(rng.gauss(0, 0.35))))
            return "tune", f"Tuning {origin}: {term[1].upper()}'s {symbol} from {old:g} to {term[2]:.3g}.", spec
        if move == "add" and len(spec["terms"]) < MAX_TERMS:
            kind = rng.choice(PIECES)
            weight = rng.choice((0.1, 0.25, 0.5))
            spec["terms"].append([weight, kind, DEFAULT_PARAMETER.get(kind)])
            return "add", f"Adding {weight:g} × {kind.upper()} to {origin}.", spec
        if move == "drop" and len(spec["terms"]) > 1:
            dropped = spec["terms"].pop(rng.randrange(len(spec["terms"])))
            return "drop", f"Dropping the {dropped[1].upper()} term of {origin}.", spec
        old = spec["temperature"]
        spec["temperature"] = min(4.0, max(0.25, old * rng.choice((0.5, 0.7, 1.5, 2.0))))
        return ("temperature", f"Changing the temperature on the logits of {origin} from {old:g} to "
                f"{spec['temperature']:g}: "
                "it sets how fast the loss saturates on confident examples.", spec)
