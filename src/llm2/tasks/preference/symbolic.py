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
import json
import math
import random
from dataclasses import dataclass, replace

from llm2.proposers.base import ProposalRequest, Reply, ScoredCandidate
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


@dataclass(frozen=True)
class Parent:
    name: str
    fitness: float | None
    tree: Node
    readable: bool = True  # False: foreign code, stood in for by a random tree

    def label(self) -> str:
        score = "no fitness yet" if self.fitness is None else f"fitness {self.fitness:.4f}"
        return f"{self.name} ({score})"


@dataclass(frozen=True)
class Change:
    tree: Node
    parents: tuple[Parent, ...]
    mutation: str
    what: str  # what was changed
    why: str  # why this change might help
    effect: str  # what we expect to see


class SymbolicProposer:
    name = "symbolic"

    def __init__(self, seed: int = 0, top_k: int = 5, max_leaves: int = 4, max_size: int = 9):
        self.seed = seed
        self.top_k = top_k
        self.max_leaves = max_leaves
        self.max_size = max_size  # nodes in a tree: keeps the code short enough to read
        self._trees: dict[str, Node] = {}  # code hash -> the tree this proposer wrote

    def propose(self, request: ProposalRequest) -> Reply:
        rng = random.Random(f"{self.seed}:{request.seed}")
        readable = [(c, self._tree_of(c)) for c in request.history]
        seen = {formula(tree) for _, tree in readable if tree is not None}
        pool = self._parents(readable)
        change = None
        for _ in range(MAX_TRIES):
            candidate = self._mutate(pool, rng)
            if candidate is not None:
                candidate = replace(candidate, tree=canonical(candidate.tree))
            if (candidate is not None and formula(candidate.tree) not in seen
                    and len(leaves(candidate.tree)) <= self.max_leaves and size(candidate.tree) <= self.max_size):
                change = candidate
                break
        if change is None:  # the neighbourhood is exhausted: explore (random constants never repeat in practice)
            reason = "every nearby variation of the best losses has been tried already"
            change = self._fresh(rng, reason)
            for _ in range(MAX_TRIES):
                if formula(change.tree) not in seen:
                    break
                change = self._fresh(rng, reason)
        code = render(change.tree)
        self._trees[_code_key(code)] = change.tree
        name = _unique_name(_stem(change.tree), formula(change.tree), {c.name for c in request.history})
        reply = {"thought": _thought(change), "name": name, "code": code}
        return Reply(json.dumps(reply), model="symbolic")

    # --- parents ------------------------------------------------------------------------------------------------

    def _tree_of(self, candidate: ScoredCandidate) -> Node | None:
        return (self._trees.get(_code_key(candidate.code)) or tree_from_code(candidate.code)
                or KNOWN_TREES.get(candidate.name.lower()))

    def _parents(self, readable: list[tuple[ScoredCandidate, Node | None]]) -> list[Parent]:
        scored = [(c, t) for c, t in readable if c.fitness is not None and math.isfinite(c.fitness)]
        scored.sort(key=lambda pair: -pair[0].fitness)  # stable: earlier candidates win ties
        pool: list[Parent] = []
        formulas: set[str] = set()
        for candidate, tree in scored:
            parent = (Parent(candidate.name, candidate.fitness, tree) if tree is not None else
                      Parent(candidate.name, candidate.fitness, _foreign_tree(candidate.code), readable=False))
            if formula(parent.tree) in formulas:
                continue
            formulas.add(formula(parent.tree))
            pool.append(parent)
            if len(pool) == self.top_k:
                break
        if not pool:  # nothing scored yet: start from the two classics
            pool = [Parent("hinge", None, KNOWN_TREES["hinge"]), Parent("dpo", None, KNOWN_TREES["dpo"])]
        return pool

    def _pick(self, pool: list[Parent], rng: random.Random, avoid: Parent | None = None) -> Parent:
        options = [p for p in pool if p is not avoid] or pool
        return rng.choices(options, weights=PARENT_WEIGHTS[:len(options)] + (0.05,) * (len(options) - 5))[0]

    # --- mutations ----------------------------------------------------------------------------------------------

    def _mutate(self, pool: list[Parent], rng: random.Random) -> Change | None:
        mutation = rng.choices(list(MUTATION_WEIGHTS), weights=list(MUTATION_WEIGHTS.values()))[0]
        first = self._pick(pool, rng)
        second = self._pick(pool, rng, avoid=first)
        if mutation == "fresh":
            return self._fresh(rng, reason="exploring outside the current best family from time to time keeps "
                                           "the search from settling on one shape too early")
        if mutation in ("blend", "gate", "crossover") and formula(first.tree) == formula(second.tree):
            return None
        return getattr(self, f"_{mutation}")(first, second, rng)

    def _tune(self, parent: Parent, other: Parent, rng: random.Random) -> Change | None:
        options = constants(parent.tree)
        if not options:
            return None
        path, field_name, old = rng.choice(options)
        node = node_at(parent.tree, path)
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
        tree = replace_at(parent.tree, path, replace(node, **{field_name: new}))
        up = new > old
        what = f"tuned a constant: the {field_name} of its {_describe(node)} goes from {fmt(old)} to {fmt(new)}"
        why, effect = _tuning_rationale(field_name, up)
        return Change(tree, (parent,), "tune", what, why, effect)

    def _swap(self, parent: Parent, other: Parent, rng: random.Random) -> Change | None:
        path, leaf = rng.choice([(p, n) for p, n in subtrees(parent.tree) if isinstance(n, LEAVES)])
        kinds = [k for k in LEAF_WEIGHTS if not isinstance(leaf, k)]
        kind = rng.choices(kinds, weights=[LEAF_WEIGHTS[k] for k in kinds])[0]
        new_leaf = _leaf_like(kind, leaf.var, getattr(leaf, "scale", 1.0))
        tree = replace_at(parent.tree, path, new_leaf)
        what = f"replaced its {_describe(leaf)} by a {_describe(new_leaf)}"
        why = (f"the {kind_of(new_leaf)} shape weighs pairs differently: {_SHAPE_NOTES[type(new_leaf)]}; "
               f"the rest of the parent is kept")
        effect = "a different balance between pushing the margin up and staying close to the reference"
        return Change(tree, (parent,), "swap", what, why, effect)

    def _blend(self, first: Parent, second: Parent, rng: random.Random) -> Change:
        weight = rounded(rng.uniform(0.3, 0.8))
        tree = Blend(weight, first.tree, second.tree)
        what = f"blended the two parents with weight {fmt(weight)} on {first.name}"
        why = "both parents score well with different shapes; a weighted mix may keep the strengths of each"
        effect = f"a fitness between or above the parents', closer to {first.name}'s behaviour"
        return Change(tree, (first, second), "blend", what, why, effect)

    def _gate(self, first: Parent, second: Parent, rng: random.Random) -> Change:
        tau = rng.choice((0.05, 0.1, 0.25, 0.5, 1.0))
        tree = Gate(tau, first.tree, second.tree)
        what = (f"gated the two parents with g = σ(x/{fmt(tau)}): {first.name} acts on wrongly ranked pairs "
                f"(x < 0), {second.name} on well ranked ones, as DiscoPOP does")
        why = ("the loss a pair needs depends on whether it is already ranked right: strong pressure where the "
               "policy is wrong, a different (often gentler) shape where it is right")
        effect = "fast correction of wrong rankings without over-optimising the pairs already won"
        return Change(tree, (first, second), "gate", what, why, effect)

    def _sign(self, parent: Parent, other: Parent, rng: random.Random) -> Change | None:
        if isinstance(parent.tree, SignWeighted):
            return None
        neg = rounded(rng.uniform(0.3, 1.5))
        tree = SignWeighted(neg, 1.0, parent.tree)
        what = f"weighted its loss by {fmt(neg)} where ρ < 0 and by 1.0 where ρ ≥ 0, like PADLL"
        if neg < 1.0:
            why = ("about one label in five is wrong, and wrongly ranked pairs are where mislabelled ones "
                   "concentrate; weighting them less limits the damage from noisy labels")
            effect = "a steadier policy that follows the gold reward more than the label noise"
        else:
            why = "pairs the policy still ranks wrongly carry most of the signal; weighting them more fixes them faster"
            effect = "faster gains in the gold reward, at some risk of fitting mislabelled pairs"
        return Change(tree, (parent,), "sign", what, why, effect)

    def _anchor(self, parent: Parent, other: Parent, rng: random.Random) -> Change:
        var = rng.choice(("xc", "xr"))
        kind = rng.choice((Logistic, Hinge, Saturating))
        term = _leaf_like(kind, var, 1.0)
        weight = rounded(rng.uniform(0.05, 0.3))
        tree = Sum(weight, parent.tree, term)
        side = "chosen" if var == "xc" else "rejected"
        what = f"added {fmt(weight)} × a {_describe(term)}, a term on the {side} completion alone (like bco_pair)"
        why = ("the pairwise margin can grow by pushing the rejected completion down as well as by raising the "
               f"chosen one; a direct term on the {side} log-ratio steers which of the two moves")
        effect = "a similar reward with a different KL; a small weight keeps the parent's behaviour dominant"
        return Change(tree, (parent,), "anchor", what, why, effect)

    def _crossover(self, first: Parent, second: Parent, rng: random.Random) -> Change | None:
        targets = subtrees(first.tree)[1:] or subtrees(first.tree)
        path, removed = rng.choice(targets)
        _, donor = rng.choice(subtrees(second.tree))
        if formula(removed) == formula(donor):
            return None
        tree = replace_at(first.tree, path, donor)
        what = f"crossed over: the {_describe(removed)} of {first.name} is replaced by the {_describe(donor)} of " \
               f"{second.name}"
        why = "recombining parts of two good losses explores shapes that neither parent reaches by small steps"
        effect = f"mostly {first.name}'s behaviour, with {second.name}'s treatment of part of the pairs"
        return Change(tree, (first, second), "crossover", what, why, effect)

    def _simplify(self, parent: Parent, other: Parent, rng: random.Random) -> Change | None:
        parts = children(parent.tree)
        if not parts:
            return None
        kept = rng.choice(parts)
        what = f"simplified it to one of its parts, the {_describe(kept)}"
        why = "a simpler loss is easier to reason about and tells whether the dropped part was pulling its weight"
        effect = "if the fitness holds, the dropped part was dead weight; if it falls, it mattered"
        return Change(kept, (parent,), "simplify", what, why, effect)

    def _fresh(self, rng: random.Random, reason: str) -> Change:
        tree = _random_tree(rng)
        what = f"wrote a fresh random loss instead of editing a parent: {tree.pretty()}"
        effect = "probably worse than the best, but it may open a new region of the search"
        return Change(tree, (), "fresh", what, reason, effect)


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
    return (f"{start} Change ({change.mutation}): {change.what}. Why: {change.why}. "
            f"Expected effect: {change.effect}. "
            f"Resulting loss: {change.tree.pretty()}, with x = β·ρ.")
