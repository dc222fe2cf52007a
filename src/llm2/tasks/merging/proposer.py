"""The merging tasks' offline proposer: it mutates and recombines merge rules (llm2.tasks.merging.rules) taken from
the best candidates so far, no language model needed (for tests, demos and a baseline search).

Each request picks a parent among the top candidates of ``request.history`` by fitness (rank-weighted, with the
request's seed) and applies one move: tune λ, change the sparsification (kind, density, outliers, rescaling),
change how task vectors combine (sum, mean, TIES's sign election), scale one part of the model (embeddings,
attention, MLP, norms, output head), cross two parents over, or start from a fresh random rule. It answers as an
LLM would, with JSON {"thought", "name", "code"}; the code carries its rule on a ``# llm2-rule:`` line, which is
how parents are read back, after a resume as well. Same seed and history, same reply.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import replace
from typing import Mapping

from llm2.proposers.base import ScoredCandidate
from llm2.proposers.offline import Grammar, OfflineProposer, Parent, Variation
from llm2.tasks.merging.rules import BASELINE_RULES, COMBINE, PARTS, SPARSIFY, Rule, describe, read_rule, render

MOVE_WEIGHTS = {"lambda": 0.25, "sparsify": 0.15, "combine": 0.1, "part": 0.25, "crossover": 0.15, "fresh": 0.1}
PARENT_WEIGHTS = (0.4, 0.25, 0.15, 0.12, 0.08)  # by rank among the top candidates
MAX_TRIES = 50
WHY = {
    "lambda": "the right overall scaling trades each expert's own gain against interference with the others",
    "sparsify": "dropping small or random entries of each task vector removes redundant changes that interfere "
                "(TIES, DARE, Breadcrumbs)",
    "combine": "how the task vectors are combined decides what happens where experts disagree in sign",
    "part": "parts of a model interfere differently: rows of the embeddings and the output head belong mostly to "
            "one expert, while attention and MLP weights are shared by every skill",
    "crossover": "two good rules may be good for different reasons, and their options combine",
    "fresh": "the neighbourhood of the best rules has been explored, so a different region may do better",
}


class MergingOfflineProposer(OfflineProposer):
    def __init__(self, seed: int = 0, top_k: int = 5):
        super().__init__(MergingGrammar(top_k), seed)


class MergingGrammar(Grammar):
    """Merge rules (llm2.tasks.merging.rules) as the genome of an offline proposer."""

    name = "merging-offline"
    move_weights = MOVE_WEIGHTS
    max_tries = MAX_TRIES

    def __init__(self, top_k: int = 5):
        self.top_k = top_k

    def read(self, candidate: ScoredCandidate, context: None) -> Rule | None:
        return read_rule(candidate.name, candidate.code)  # foreign code (model_stock, an LLM's idea): None

    def key(self, rule: Rule) -> str:
        return rule.key()  # key() normalises

    def first_parents(self, context: None) -> list[Parent]:
        return [Parent("task_arithmetic", None, BASELINE_RULES["task_arithmetic"])]

    def vary(self, rng: random.Random, parents: list[Parent], context: None,
             weights: Mapping[str, float]) -> Variation:
        move = _choose(rng, weights)
        parent = parents[rng.choices(range(len(parents)), weights=PARENT_WEIGHTS[:len(parents)])[0]]
        rule, what = self._apply(move, parent, parents, rng)
        return Variation(rule, move, (parent,), what, WHY[move])

    def exhausted(self, rng: random.Random, context: None, seen: set[str], last: Variation | None) -> Variation:
        # everything nearby was tried: a fresh rule (random numbers make repeats vanishingly rare)
        return Variation(_fresh(rng), "fresh", (), "started from a fresh random rule", WHY["fresh"])

    def render(self, rule: Rule, context: None) -> str:
        return render(rule.normalised())

    def name_of(self, variation: Variation, taken: set[str]) -> str:
        return _unique_name(variation.genome.normalised(), taken)

    def thought(self, variation: Variation, context: None) -> str:
        what, origin = variation.what, ""
        if variation.move != "fresh" and variation.parents:
            parent = variation.parents[0]
            score = "" if parent.fitness is None else f" (fitness {parent.fitness:.4f})"
            origin = f", starting from {parent.name}{score}"
        return f"{what[0].upper()}{what[1:]}{origin}: {variation.why}. The rule: {describe(variation.genome)}."

    def _apply(self, move: str, parent: Parent, parents: list[Parent], rng: random.Random) -> tuple[Rule, str]:
        rule = parent.genome
        if move == "lambda":
            lam = rule.lam * math.exp(rng.gauss(0.0, 0.25))
            return replace(rule, lam=lam), f"changed λ from {rule.lam:.3g} to {lam:.3g}"
        if move == "sparsify":
            return _resparsify(rule, rng)
        if move == "combine":
            combine = rng.choice([c for c in COMBINE if c != rule.combine])
            return replace(rule, combine=combine), f"combined the task vectors by {combine} instead of {rule.combine}"
        if move == "part":
            part = rng.choice(PARTS)
            old = rule.scales.get(part, 1.0)
            new = max(0.0, old * math.exp(rng.gauss(0.0, 0.35)) if old > 0 else rng.uniform(0.2, 1.0))
            return replace(rule, scales={**rule.scales, part: new}), f"scaled the {part} parameters by {new:.3g}"
        if move == "crossover" and len(parents) > 1:
            other = rng.choice([p for p in parents if p is not parent])
            mixed = Rule(**{f: getattr(rng.choice((rule, other.genome)), f)
                            for f in ("sparsify", "density", "outliers", "rescale", "combine", "lam")},
                         scales={p: rng.choice((rule, other.genome)).scales.get(p, 1.0) for p in PARTS})
            return mixed, f"crossed it over with {other.name}"
        return _fresh(rng), "started from a fresh random rule"


def _resparsify(rule: Rule, rng: random.Random) -> tuple[Rule, str]:
    kind = rng.choice(SPARSIFY)
    if kind == "none":
        return replace(rule, sparsify="none", rescale=False), "stopped sparsifying the task vectors"
    density = rule.density if rule.sparsify == kind else rng.uniform(0.1, 0.9)
    density = min(1.0, density * math.exp(rng.gauss(0.0, 0.4)))
    rescale = rng.random() < 0.5
    outliers = rule.outliers if kind == "magnitude" and rng.random() < 0.7 else (
        rng.choice((0.0, 0.005, 0.01, 0.02)) if kind == "magnitude" else 0.0)
    what = f"kept a {'random' if kind == 'random' else 'top-magnitude'} {density:.3g} of each task vector"
    return replace(rule, sparsify=kind, density=density, rescale=rescale, outliers=outliers), what


def _fresh(rng: random.Random) -> Rule:
    kind = rng.choice(SPARSIFY)
    scales = {p: round(rng.uniform(0.3, 2.0), 2) for p in PARTS if rng.random() < 0.3}
    return Rule(sparsify=kind, density=rng.uniform(0.1, 0.9), outliers=rng.choice((0.0, 0.0, 0.01)),
                rescale=rng.random() < 0.5, combine=rng.choice(COMBINE), lam=rng.uniform(0.2, 1.2), scales=scales)


def _choose(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _unique_name(rule: Rule, taken: set[str]) -> str:
    """A name for a normalised ``rule`` not in ``taken``."""
    parts = [{"sum": "ta", "mean": "avg", "ties": "ties", "ties_sum": "tiesum"}[rule.combine]]
    if rule.sparsify != "none":
        parts.append(f"{'mag' if rule.sparsify == 'magnitude' else 'drop'}{rule.density:g}")
    parts.append(f"l{rule.lam:g}")
    parts += [f"{p}{v:g}" for p, v in rule.scales.items()]
    base = re.sub(r"[^a-z0-9_]", "", "_".join(parts).replace(".", "p"))
    name, suffix = base, 2
    while name in taken:
        name, suffix = f"{base}_{suffix}", suffix + 1
    return name
