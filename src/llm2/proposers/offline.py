"""The base of every offline proposer: a search over genomes (a loss tree, a merge rule, a reward spec...) that needs
no language model, for tests, demos, CI and a baseline search.

A task writes its ``Grammar`` (what a genome is, how it is read back from a candidate's code, its moves, how it is
rendered as code, named and explained) and keeps it in its own folder; ``OfflineProposer`` holds the search: read the
history's genomes, rank the parents, vary one until it is new, answer in the JSON an LLM would, and learn which moves
pay: from an advice rewrite (``rewrite_advice``: the moves that produced candidates above the reference get more
weight, the others less; the weights ride in the advice text, so the advice in force decides what the next proposals
sample), and, with no advice in force, from the run's own history for a grammar that can read a proposal's move
back from its thought (``move_in``): a move pays when its proposal was trained to a fitness in the upper half of
the history's (one stopped after its first seed by the race, a duplicate or a failure did not pay).

Same seed, history and advice: the same reply, also after a resume (the moves are read from the history).
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, replace
from typing import Any, Generic, Mapping, TypeVar

from llm2.proposers.base import ProposalRequest, Reply, ScoredCandidate

Genome = TypeVar("Genome")
WEIGHTS_LINE = "Offline move weights:"  # how the advice carries the weights (see rewrite_advice)
_WEIGHT = re.compile(r"([a-z_]+) (\d+(?:\.\d+)?)")
_MOST_CHANGE = 4.0  # an advice moves a weight at most this factor away from the grammar's own


@dataclass(frozen=True)
class Parent(Generic[Genome]):
    name: str
    fitness: float | None
    genome: Genome
    readable: bool = True  # False: foreign code, stood in for by a genome the grammar made up

    def label(self) -> str:
        score = "no fitness yet" if self.fitness is None else f"fitness {self.fitness:.4f}"
        return f"{self.name} ({score})"


@dataclass(frozen=True)
class Variation(Generic[Genome]):
    """One proposal before it is written: the genome, the move that made it and the words that explain it."""

    genome: Genome
    move: str
    parents: tuple[Parent, ...] = ()
    what: str = ""  # what was changed
    why: str = ""  # why it might help
    effect: str = ""  # what to expect


class Grammar(Generic[Genome]):
    """A task's search space as data and moves. Subclasses set ``name`` and ``move_weights`` and write ``read``,
    ``key``, ``vary``, ``render``, ``name_of`` and ``thought``; the rest has defaults."""

    name: str  # the proposer's name, also the reply's model
    move_weights: Mapping[str, float]  # move -> how often it is tried
    top_k = 5  # parents: the best this many
    distinct_parents = True  # two parents with one genome count once
    max_tries = 50  # variations tried before ``exhausted``
    ascii_json = True  # the reply's JSON escapes non-ASCII characters
    finish_reason = ""

    def rng_key(self, seed: int, request: ProposalRequest) -> str:
        return f"{seed}:{request.seed}"

    def context(self, request: ProposalRequest) -> Any:
        """What the grammar reads off the whole request (e.g. the environment); passed to the other methods."""
        return None

    def read(self, candidate: ScoredCandidate, context: Any) -> Genome | None:
        """The genome of a baseline or of code this grammar wrote; None for anything else."""
        raise NotImplementedError

    def stand_in(self, candidate: ScoredCandidate, context: Any) -> Genome | None:
        """A genome standing in for a scored candidate that cannot be read; None: such a candidate is no parent."""
        return None

    def key(self, genome: Genome) -> str:
        """Equal for genomes that are the same proposal."""
        raise NotImplementedError

    def normalise(self, genome: Genome) -> Genome:
        return genome

    def acceptable(self, genome: Genome) -> bool:
        return True

    def first_parents(self, context: Any) -> list[Parent]:
        """The parents when nothing is scored yet."""
        return []

    def vary(self, rng: random.Random, parents: list[Parent], context: Any,
             weights: Mapping[str, float]) -> Variation | None:
        """One variation of the parents, its move drawn with ``weights``; None: this try gave nothing."""
        raise NotImplementedError

    def exhausted(self, rng: random.Random, context: Any, seen: set[str], last: Variation | None) -> Variation:
        """Every try gave a genome seen before (or none): what to propose instead (default: the last try)."""
        assert last is not None, "a grammar whose tries can all fail must say what to do then"
        return last

    def render(self, genome: Genome, context: Any) -> str:
        raise NotImplementedError

    def name_of(self, variation: Variation, taken: set[str]) -> str:
        raise NotImplementedError

    def thought(self, variation: Variation, context: Any) -> str:
        raise NotImplementedError

    def wrote(self, genome: Genome, code: str) -> None:
        """Called with every genome proposed and its code (a grammar that remembers them keeps them here)."""

    def move_in(self, thought: str) -> str | None:
        """The move named in a proposal's thought, as this grammar writes it; None: the grammar does not learn its
        move weights from the run's history (untrusted text: an unknown move is None)."""
        return None


class SpecGrammar(Grammar):
    """A grammar whose genome is a JSON-able spec (a dict) that its code carries on a spec line: the key is the
    normalised spec's JSON, the name and the description come from the spec, and the random stream also depends
    on the history's length."""

    distinct_parents = False
    ascii_json = False
    finish_reason = "stop"

    def rng_key(self, seed: int, request: ProposalRequest) -> str:
        return f"{self.name}:{seed}:{request.seed}:{len(request.history)}"

    def key(self, spec: dict) -> str:
        return json.dumps(self.normalise(spec))

    def describe(self, spec: dict) -> str:
        raise NotImplementedError

    def spec_name(self, spec: dict) -> str:
        raise NotImplementedError

    def name_of(self, variation: Variation, taken: set[str]) -> str:
        return self.spec_name(variation.genome)

    def thought(self, variation: Variation, context: Any) -> str:
        return f"{variation.what} Result: {self.describe(variation.genome)}."


class OfflineProposer:
    """A proposer searching the genomes of ``grammar``; the task's proposer class is this with its grammar."""

    def __init__(self, grammar: Grammar, seed: int = 0):
        self.grammar = grammar
        self.name = grammar.name
        self.seed = seed
        self.moves: dict[str, str] = {}  # name of a proposal -> the move that made it, for rewrite_advice

    def propose(self, request: ProposalRequest) -> Reply:
        grammar = self.grammar
        context = grammar.context(request)
        rng = random.Random(grammar.rng_key(self.seed, request))
        weights = advised_weights(grammar.move_weights, request)
        if weights is grammar.move_weights:  # no advice in force: learn from this run's own proposals
            weights = learnt_weights(grammar.move_weights, history_outcomes(grammar, request.history))
        read = [(c, grammar.read(c, context)) for c in request.history]  # read once: for seen and the parents
        seen = {grammar.key(genome) for _, genome in read if genome is not None}
        parents = self._parents(read, context)
        variation = None
        for _ in range(grammar.max_tries):
            variation = grammar.vary(rng, parents, context, weights)
            if variation is None:
                continue
            variation = replace(variation, genome=grammar.normalise(variation.genome))
            if grammar.acceptable(variation.genome) and grammar.key(variation.genome) not in seen:
                break
        else:
            variation = grammar.exhausted(rng, context, seen, variation)
        code = grammar.render(variation.genome, context)
        grammar.wrote(variation.genome, code)
        name = grammar.name_of(variation, {c.name for c in request.history})
        self.moves[name] = variation.move
        reply = {"thought": grammar.thought(variation, context), "name": name, "code": code}
        return Reply(json.dumps(reply, ensure_ascii=grammar.ascii_json), model=self.name,
                     finish_reason=grammar.finish_reason)

    def _parents(self, read: list[tuple[ScoredCandidate, Any]], context: Any) -> list[Parent]:
        # a duplicate's fitness is its original's, not a measurement: the original alone stands for that behaviour,
        # so the parents are distinct behaviours instead of one behaviour under many names
        scored = [(c, g) for c, g in read if measured(c)]
        scored.sort(key=lambda pair: -pair[0].fitness)  # stable: earlier candidates win ties
        parents: list[Parent] = []
        keys: set[str] = set()
        for candidate, genome in scored:
            readable = genome is not None
            genome = genome if readable else self.grammar.stand_in(candidate, context)
            if genome is None or (self.grammar.distinct_parents and self.grammar.key(genome) in keys):
                continue
            keys.add(self.grammar.key(genome))
            parents.append(Parent(candidate.name, candidate.fitness, genome, readable))
            if len(parents) == self.grammar.top_k:
                break
        return parents or self.grammar.first_parents(context)

    def rewrite_advice(self, advice: str, worked: tuple[str, ...], failed: tuple[str, ...]) -> str:
        """The advice with new move weights: each move's share of proposals that worked (above the reference),
        smoothed, against the share of all of them, times the grammar's own weight. Only this proposer's own
        proposals count (their moves are known); with none, the advice is returned as it was."""
        outcomes = [(self.moves[n], True) for n in worked if n in self.moves]
        outcomes += [(self.moves[n], False) for n in failed if n in self.moves]
        if not outcomes:
            return advice
        weights = learnt_weights(self.grammar.move_weights, outcomes)
        total = sum(weights.values())
        told = ", ".join(f"{move} {weight / total:.3f}" for move, weight in weights.items())
        kept = "\n".join(line for line in advice.splitlines() if not line.startswith(WEIGHTS_LINE)).strip()
        return (kept + "\n" if kept else "") + f"{WEIGHTS_LINE} {told}"


def learnt_weights(own: Mapping[str, float], outcomes: list[tuple[str, bool]]) -> Mapping[str, float]:
    """``own`` with each move's weight times its smoothed share of proposals that paid against the share of all
    of them, kept within a factor _MOST_CHANGE; ``own`` itself when there is no outcome."""
    if not outcomes:
        return own
    overall = (sum(ok for _, ok in outcomes) + 1) / (len(outcomes) + 2)
    weights = {}
    for move, weight in own.items():
        tried = [ok for m, ok in outcomes if m == move]
        ratio = (sum(tried) + 1) / (len(tried) + 2) / overall
        weights[move] = weight * min(_MOST_CHANGE, max(1 / _MOST_CHANGE, ratio))
    return weights


def history_outcomes(grammar: Grammar, history: tuple[ScoredCandidate, ...]) -> list[tuple[str, bool]]:
    """(move, paid) for each proposal of the history whose move the grammar reads from its thought. Paid: trained
    to a finite fitness at or above the median of the history's measured fitnesses (baselines included; a
    duplicate's copied score is not a measurement)."""
    fitnesses = sorted(c.fitness for c in history if measured(c))
    if not fitnesses:
        return []
    bar = fitnesses[(len(fitnesses) - 1) // 2]
    outcomes = []
    for candidate in history:
        if candidate.status in ("baseline", "pending"):  # pending: proposed this generation, not yet judged
            continue
        move = grammar.move_in(candidate.thought)
        if move in grammar.move_weights:
            outcomes.append((move, measured(candidate) and candidate.fitness >= bar))
    return outcomes


def measured(candidate: ScoredCandidate) -> bool:
    """A finite fitness that was measured: a duplicate's is its original's, copied."""
    return (candidate.fitness is not None and math.isfinite(candidate.fitness)
            and candidate.status != "duplicate")


def advised_weights(own: Mapping[str, float], request: ProposalRequest) -> Mapping[str, float]:
    """The move weights the last message's advice gives (its ``WEIGHTS_LINE``), each kept within a factor
    _MOST_CHANGE of the grammar's own and only for moves the grammar has (the text is untrusted); ``own`` itself
    when there is none."""
    text = request.messages[-1].content if request.messages else ""
    line = next((line for line in reversed(text.splitlines()) if line.startswith(WEIGHTS_LINE)), None)
    if line is None:
        return own
    told = {move: float(value) for move, value in _WEIGHT.findall(line[len(WEIGHTS_LINE):]) if move in own}
    if not told:
        return own
    scale = sum(own.values()) / max(sum(told.values()), 1e-9)  # the told shares, on the grammar's own scale
    return {move: min(weight * _MOST_CHANGE, max(weight / _MOST_CHANGE, told.get(move, weight) * scale))
            for move, weight in own.items()}
