"""The built-in offline proposer: it evolves loss expressions (see symbolic_grammar) from the best candidates so far.

Each request picks parents among the top candidates of ``request.history`` by fitness (rank-weighted, with the
request's seed), applies one mutation (constant tuning, leaf swaps, blends, sigmoid gates, sign-dependent weights,
an extra term on r_c or r_r, crossover, simplification, or a fresh random tree to explore) and answers in the same
JSON form an LLM would: a thought saying what changed and why, a unique snake_case name and the code.

It reads its parents' trees from its own memory, else from the formula comment in their code (so a resumed run
continues the same way), else from the catalog by name; foreign code it cannot read becomes a random tree.
Same seed and history give the same reply. The request's temperature is not used.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import replace
from typing import Mapping

from llm2.proposers.base import ScoredCandidate
from llm2.proposers.offline import Grammar, OfflineProposer, Parent, Variation as Change
from llm2.tasks.preference.symbolic_grammar import (
    KNOWN_TREES, LEAVES, Blend, Exponential, Gate, Hinge, Logistic, Node, Saturating, SignWeighted, Squared, Sum,
    canonical, children, constant_range, constants, fmt, kind_of, leaves, node_at, replace_at, rounded, size,
    subtrees,
)
from llm2.tasks.preference.symbolic_text import formula, render, tree_from_code

# How often each mutation is tried; tuning the best (hinge-like early on) is the most fertile move.
MUTATION_WEIGHTS: dict[str, float] = {
    "tune": 0.28, "swap": 0.08, "blend": 0.10, "gate": 0.08, "sign": 0.10, "anchor": 0.10, "crossover": 0.08,
    "simplify": 0.06, "fresh": 0.12,
}
# Leaf kinds for swaps and fresh trees: hinge-like losses did best on the synthetic world, so they come first.
LEAF_WEIGHTS: dict[type, float] = {Hinge: 0.4, Logistic: 0.2, Exponential: 0.15, Saturating: 0.1, Squared: 0.15}
PARENT_WEIGHTS = (0.45, 0.25, 0.15, 0.1, 0.05)  # by rank among the top candidates
MAX_TRIES = 40
_MOVE_IN_THOUGHT = re.compile(r"\bChange \(([a-z]+)\): ")


class SymbolicProposer(OfflineProposer):
    def __init__(self, seed: int = 0, top_k: int = 5, max_leaves: int = 4, max_size: int = 9):
        super().__init__(SymbolicGrammar(top_k, max_leaves, max_size), seed)


class SymbolicGrammar(Grammar):
    """Loss trees (symbolic_grammar) as the genome of an offline proposer."""

    name = "symbolic"
    move_weights = MUTATION_WEIGHTS
    max_tries = MAX_TRIES

    def __init__(self, top_k: int = 5, max_leaves: int = 4, max_size: int = 9):
        self.top_k = top_k
        self.max_leaves = max_leaves
        self.max_size = max_size  # nodes in a tree: keeps the code short enough to read
        self._trees: dict[str, Node] = {}  # code hash -> the tree this proposer wrote

    def read(self, candidate: ScoredCandidate, context: None) -> Node | None:
        return (self._trees.get(_code_key(candidate.code)) or tree_from_code(candidate.code)
                or KNOWN_TREES.get(candidate.name.lower()))

    def stand_in(self, candidate: ScoredCandidate, context: None) -> Node:
        return _foreign_tree(candidate.code)

    def key(self, tree: Node) -> str:
        return formula(tree)

    def normalise(self, tree: Node) -> Node:
        return canonical(tree)

    def acceptable(self, tree: Node) -> bool:
        # a preference loss must see both completions: the margin x, or both one-sided terms (a crossover can
        # leave a lone term on r_r, which never trains the chosen completion)
        sides = {leaf.var for leaf in leaves(tree)}
        return (len(leaves(tree)) <= self.max_leaves and size(tree) <= self.max_size
                and ("x" in sides or {"xc", "xr"} <= sides))

    def first_parents(self, context: None) -> list[Parent]:  # nothing scored yet: start from the two classics
        return [Parent("hinge", None, KNOWN_TREES["hinge"]), Parent("dpo", None, KNOWN_TREES["dpo"])]

    def exhausted(self, rng: random.Random, context: None, seen: set[str], last: Change | None) -> Change:
        # the neighbourhood is exhausted: explore (random constants never repeat in practice)
        reason = "every nearby variation of the best losses has been tried already"
        change = self._fresh(rng, reason)
        for _ in range(MAX_TRIES):
            if formula(change.genome) not in seen:
                break
            change = self._fresh(rng, reason)
        return change

    def render(self, tree: Node, context: None) -> str:
        return render(tree)

    def wrote(self, tree: Node, code: str) -> None:
        self._trees[_code_key(code)] = tree

    def move_in(self, thought: str) -> str | None:
        found = _MOVE_IN_THOUGHT.search(thought)  # as _thought writes it
        return found.group(1) if found and found.group(1) in self.move_weights else None

    def name_of(self, change: Change, taken: set[str]) -> str:
        return _unique_name(_stem(change.genome), formula(change.genome), taken)

    def thought(self, change: Change, context: None) -> str:
        return _thought(change)

    def _pick(self, pool: list[Parent], rng: random.Random, avoid: Parent | None = None) -> Parent:
        options = [p for p in pool if p is not avoid] or pool
        return rng.choices(options, weights=PARENT_WEIGHTS[:len(options)] + (0.05,) * (len(options) - 5))[0]

    # --- mutations ----------------------------------------------------------------------------------------------

    def vary(self, rng: random.Random, pool: list[Parent], context: None,
             weights: Mapping[str, float]) -> Change | None:
        mutation = rng.choices(list(weights), weights=list(weights.values()))[0]
        first = self._pick(pool, rng)
        second = self._pick(pool, rng, avoid=first)
        if mutation == "fresh":
            return self._fresh(rng, reason="exploring outside the current best family from time to time keeps "
                                           "the search from settling on one shape too early")
        if mutation in ("blend", "gate", "crossover") and formula(first.genome) == formula(second.genome):
            return None
        return getattr(self, f"_{mutation}")(first, second, rng)

    def _tune(self, parent: Parent, other: Parent, rng: random.Random) -> Change | None:
        options = constants(parent.genome)
        if not options:
            return None
        path, field_name, old = rng.choice(options)
        node = node_at(parent.genome, path)
        low, high = constant_range(node, field_name)
        if field_name in ("weight", "neg", "pos") and high <= 2.0:
            new = old + rng.gauss(0.0, 0.15 * (high - low))
        elif old == 0.0:
            new = rng.uniform(0.2, 1.5)
        else:
            new = old * math.exp(rng.gauss(0.0, 0.4))
        new = rounded(min(max(new, low), high))
        if new == old:
            return None
        tree = replace_at(parent.genome, path, replace(node, **{field_name: new}))
        up = new > old
        what = f"tuned a constant: the {field_name} of its {_describe(node)} goes from {fmt(old)} to {fmt(new)}"
        why, effect = _tuning_rationale(field_name, up)
        return Change(tree, "tune", (parent,), what, why, effect)

    def _swap(self, parent: Parent, other: Parent, rng: random.Random) -> Change | None:
        path, leaf = rng.choice([(p, n) for p, n in subtrees(parent.genome) if isinstance(n, LEAVES)])
        kinds = [k for k in LEAF_WEIGHTS if not isinstance(leaf, k)]
        kind = rng.choices(kinds, weights=[LEAF_WEIGHTS[k] for k in kinds])[0]
        new_leaf = _leaf_like(kind, leaf.var, getattr(leaf, "scale", 1.0))
        tree = replace_at(parent.genome, path, new_leaf)
        what = f"replaced its {_describe(leaf)} by a {_describe(new_leaf)}"
        why = (f"the {kind_of(new_leaf)} shape weighs pairs differently: {_SHAPE_NOTES[type(new_leaf)]}; "
               f"the rest of the parent is kept")
        effect = "a different balance between pushing the margin up and staying close to the reference"
        return Change(tree, "swap", (parent,), what, why, effect)

    def _blend(self, first: Parent, second: Parent, rng: random.Random) -> Change:
        weight = rounded(rng.uniform(0.3, 0.8))
        tree = Blend(weight, first.genome, second.genome)
        what = f"blended the two parents with weight {fmt(weight)} on {first.name}"
        why = "both parents score well with different shapes; a weighted mix may keep the strengths of each"
        effect = f"a fitness between or above the parents', closer to {first.name}'s behaviour"
        return Change(tree, "blend", (first, second), what, why, effect)

    def _gate(self, first: Parent, second: Parent, rng: random.Random) -> Change:
        tau = rng.choice((0.05, 0.1, 0.25, 0.5, 1.0))
        tree = Gate(tau, first.genome, second.genome)
        what = (f"gated the two parents with g = σ(x/{fmt(tau)}): {first.name} acts on wrongly ranked pairs "
                f"(x < 0), {second.name} on well ranked ones, as DiscoPOP does")
        why = ("the loss a pair needs depends on whether it is already ranked right: strong pressure where the "
               "policy is wrong, a different (often gentler) shape where it is right")
        effect = "fast correction of wrong rankings without over-optimising the pairs already won"
        return Change(tree, "gate", (first, second), what, why, effect)

    def _sign(self, parent: Parent, other: Parent, rng: random.Random) -> Change | None:
        if isinstance(parent.genome, SignWeighted):
            return None
        neg = rounded(rng.uniform(0.3, 1.5))
        tree = SignWeighted(neg, 1.0, parent.genome)
        what = f"weighted its loss by {fmt(neg)} where ρ < 0 and by 1.0 where ρ ≥ 0, like PADLL"
        if neg < 1.0:
            why = ("about one label in five is wrong, and wrongly ranked pairs are where mislabelled ones "
                   "concentrate; weighting them less limits the damage from noisy labels")
            effect = "a steadier policy that follows the gold reward more than the label noise"
        else:
            why = "pairs the policy still ranks wrongly carry most of the signal; weighting them more fixes them faster"
            effect = "faster gains in the gold reward, at some risk of fitting mislabelled pairs"
        return Change(tree, "sign", (parent,), what, why, effect)

    def _anchor(self, parent: Parent, other: Parent, rng: random.Random) -> Change:
        var = rng.choice(("xc", "xr"))
        kind = rng.choice((Logistic, Hinge, Saturating))
        term = _leaf_like(kind, var, 1.0)
        weight = rounded(rng.uniform(0.05, 0.3))
        tree = Sum(weight, parent.genome, term)
        side = "chosen" if var == "xc" else "rejected"
        what = f"added {fmt(weight)} × a {_describe(term)}, a term on the {side} completion alone (like bco_pair)"
        why = ("the pairwise margin can grow by pushing the rejected completion down as well as by raising the "
               f"chosen one; a direct term on the {side} log-ratio steers which of the two moves")
        effect = "a similar reward with a different KL; a small weight keeps the parent's behaviour dominant"
        return Change(tree, "anchor", (parent,), what, why, effect)

    def _crossover(self, first: Parent, second: Parent, rng: random.Random) -> Change | None:
        targets = subtrees(first.genome)[1:] or subtrees(first.genome)
        path, removed = rng.choice(targets)
        _, donor = rng.choice(subtrees(second.genome))
        if formula(removed) == formula(donor):
            return None
        tree = replace_at(first.genome, path, donor)
        what = f"crossed over: the {_describe(removed)} of {first.name} is replaced by the {_describe(donor)} of " \
               f"{second.name}"
        why = "recombining parts of two good losses explores shapes that neither parent reaches by small steps"
        effect = f"mostly {first.name}'s behaviour, with {second.name}'s treatment of part of the pairs"
        return Change(tree, "crossover", (first, second), what, why, effect)

    def _simplify(self, parent: Parent, other: Parent, rng: random.Random) -> Change | None:
        parts = children(parent.genome)
        if not parts:
            return None
        kept = rng.choice(parts)
        what = f"simplified it to one of its parts, the {_describe(kept)}"
        why = "a simpler loss is easier to reason about and tells whether the dropped part was pulling its weight"
        effect = "if the fitness holds, the dropped part was dead weight; if it falls, it mattered"
        return Change(kept, "simplify", (parent,), what, why, effect)

    def _fresh(self, rng: random.Random, reason: str) -> Change:
        tree = _random_tree(rng)
        what = f"wrote a fresh random loss instead of editing a parent: {tree.pretty()}"
        effect = "probably worse than the best, but it may open a new region of the search"
        return Change(tree, "fresh", (), what, reason, effect)


# --- helpers ------------------------------------------------------------------------------------------------------

_SHAPE_NOTES = {
    Hinge: "it pushes with a constant force until the margin is met, then stops",
    Logistic: "its push fades smoothly as the margin grows but never stops",
    Exponential: "it pushes hard on badly ranked pairs and fades quickly on well ranked ones",
    Saturating: "it is bounded, so it gives up on hopeless (probably mislabelled) pairs",
    Squared: "it pulls the margin towards a target from both sides, which acts as a built-in regulariser",
}


def _tuning_rationale(field_name: str, up: bool) -> tuple[str, str]:
    if field_name == "margin":
        return (("a larger margin keeps pushing pairs that are already ranked right" if up else
                 "a smaller margin stops pushing earlier and keeps the policy closer to the reference"),
                "more gold reward at a higher KL" if up else "a lower KL, maybe less reward")
    if field_name == "scale":
        return (("a larger scale makes the loss react more sharply to the margin" if up else
                 "a smaller scale makes the loss softer, spreading its gradient over a wider range of margins"),
                "stronger, more decisive updates" if up else "gentler updates, less over-optimisation")
    if field_name == "tau":
        return ("the gate temperature sets how abruptly the loss switches between its two parts; "
                + ("a larger one blends them over a wider range of margins" if up else
                   "a smaller one switches almost like a step at x = 0"),
                "a smoother loss" if up else "a sharper split between wrong and right rankings")
    if field_name == "weight":
        return (f"the weight moves the mix {'towards the first' if up else 'towards the second'} part",
                "behaviour closer to that part's own fitness")
    if field_name == "target":
        return ("the target is the margin the squared loss settles at; "
                + ("a larger one asks for more separation" if up else "a smaller one regularises harder"),
                "more reward at more KL" if up else "less KL")
    return (f"re-weighting {'wrongly' if field_name == 'neg' else 'correctly'} ranked pairs "
            f"{'up' if up else 'down'} changes which pairs drive the update",
            "a different trade-off between fixing errors and following label noise")


def _describe(node: Node) -> str:
    if isinstance(node, LEAVES):
        return f"{kind_of(node)} term {node.pretty()}"
    return f"{kind_of(node)} part"


def _leaf_like(kind: type, var: str, scale: float) -> Node:
    if kind is Hinge:
        return Hinge(var, 1.0, scale)
    if kind is Squared:
        return Squared(var, 0.5, 1.0, False)
    return kind(var, scale)


def _random_leaf(rng: random.Random) -> Node:
    kind = rng.choices(list(LEAF_WEIGHTS), weights=list(LEAF_WEIGHTS.values()))[0]
    scale = rounded(math.exp(rng.uniform(math.log(0.5), math.log(3.0))))
    if kind is Hinge:
        return Hinge("x", rounded(rng.uniform(0.3, 2.5)), scale)
    if kind is Squared:
        return Squared("x", rounded(rng.uniform(0.2, 2.0)), rounded(rng.uniform(0.2, 1.0)), False)
    return kind("x", scale)


def _random_tree(rng: random.Random) -> Node:
    shape = rng.random()
    if shape < 0.5:
        return _random_leaf(rng)
    a, b = _random_leaf(rng), _random_leaf(rng)
    if shape < 0.75:
        return Gate(rng.choice((0.05, 0.1, 0.5, 1.0)), a, b)
    return Blend(rounded(rng.uniform(0.3, 0.8)), a, b)


def _foreign_tree(code: str) -> Node:
    """A stand-in for code the proposer cannot read: random, but the same for the same code."""
    return _random_tree(random.Random("foreign:" + _code_key(code)))


def _code_key(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


_SHORT = {"logistic": "logistic", "exponential": "exp", "hinge": "hinge", "squared": "sq", "saturating": "sat"}
_VAR_SUFFIX = {"x": "", "xc": "_chosen", "xr": "_rejected"}


def _stem(node: Node) -> str:
    if isinstance(node, LEAVES):
        return _SHORT[kind_of(node)] + _VAR_SUFFIX[node.var]
    if isinstance(node, Blend):
        return f"blend_{_stem(node.a)}_{_stem(node.b)}"
    if isinstance(node, Gate):
        return f"gated_{_stem(node.a)}_{_stem(node.b)}"
    if isinstance(node, SignWeighted):
        return f"signed_{_stem(node.inner)}"
    return f"{_stem(node.a)}_plus_{_stem(node.b)}"


def _unique_name(stem: str, tree_formula: str, taken: set[str]) -> str:
    """The stem plus a short hash of the formula: distinct trees get distinct names even when proposed side by
    side in one generation (before either is in the history)."""
    if len(stem) > 40:
        stem = stem[:40].rsplit("_", 1)[0]
    base = f"{stem}_{hashlib.sha256(tree_formula.encode()).hexdigest()[:4]}"
    name, number = base, 2
    while name in taken:
        name, number = f"{base}_{number}", number + 1
    return name


def _thought(change: Change) -> str:
    if change.parents:
        names = " and ".join(p.label() for p in change.parents)
        rank = "the best candidates so far" if len(change.parents) > 1 else "one of the best candidates so far"
        start = f"Parent{'s' if len(change.parents) > 1 else ''}: {names}, {rank}."
        unreadable = [p.name for p in change.parents if not p.readable]
        if unreadable:
            start += (f" I cannot read {', '.join(unreadable)} as an expression, so a random expression stands in "
                      "for it.")
    else:
        start = "No parent this time."
    return (f"{start} Change ({change.move}): {change.what}. Why: {change.why}. "
            f"Expected effect: {change.effect}. "
            f"Resulting loss: {change.genome.pretty()}, with x = β·ρ.")
