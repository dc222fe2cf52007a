"""The symbolic proposer: valid contract code every time, real thoughts, reproducible, and it climbs."""

import json
import math
from dataclasses import replace

import pytest
import torch

from llm2.sandbox.loader import load_function
from llm2.discovery.parse import parse_reply
from llm2.tasks.preference.catalog import OBJECTIVES
from llm2.tasks.preference.contract import PREFERENCE_CONTRACT
from llm2.proposers import make_proposer
from llm2.proposers.base import Message, ProposalRequest, ScoredCandidate
from llm2.tasks.preference.symbolic import SymbolicProposer
from llm2.tasks.preference.symbolic_grammar import (
    KNOWN_TREES, Blend, Gate, Hinge, Logistic, Saturating, SignWeighted, Sum, canonical,
)
from llm2.tasks.preference.symbolic_text import formula, parse_formula, render, tree_from_code
from llm2.sandbox.static_checks import static_check
from llm2.tasks.preference.common import check_preference_contract

BASELINE_FITNESS = {"dpo": 0.907, "hinge": 0.927, "ipo": 0.827, "kto_pair": 0.85}
BASELINES = tuple(ScoredCandidate(name, OBJECTIVES[name].code, fitness, "ok")
                  for name, fitness in BASELINE_FITNESS.items())
MESSAGES = (Message("system", "invent losses"), Message("user", "propose"))


def request(history, seed):
    return ProposalRequest(MESSAGES, tuple(history), 1.0, seed)


def proxy_fitness(fn) -> float | None:
    """A cheap stand-in for training, deterministic: how strongly the loss prefers a larger margin near x = 0.

    It rewards hinge-like losses with larger margins, so the search has somewhere to climb in tests.
    """
    x = torch.linspace(-1.0, 2.0, 31, dtype=torch.float64, requires_grad=True)
    zero = torch.zeros_like(x)
    value = fn(x / 0.2, -x / 0.2, zero, zero, 0.1).mean()  # x = β·ρ; β·r_c = −β·r_r = x / 2
    (grad,) = torch.autograd.grad(value, x)
    slope = -grad.sum().item()
    return None if not math.isfinite(slope) else 0.8 + 0.1 * math.tanh(slope)


def run(proposer, count, first_seed=0, baselines=BASELINES):
    history = list(baselines)
    replies = []
    for index in range(count):
        reply = proposer.propose(request(history, first_seed + index))
        parsed = parse_reply(reply.text)
        replies.append(parsed)
        fn = load_function(parsed.code, PREFERENCE_CONTRACT)
        history.append(ScoredCandidate(parsed.name, parsed.code, proxy_fitness(fn), "ok", parsed.thought))
    return replies, history


def check_contract(fn, batch, generator):
    inputs = [(-torch.rand(batch, generator=generator, dtype=torch.float32) * 40).requires_grad_(i < 2)
              for i in range(4)]
    out = fn(*inputs, 0.1)
    assert isinstance(out, torch.Tensor) and out.shape == (batch,)
    assert torch.isfinite(out).all()
    out.mean().backward()
    for grad in (inputs[0].grad, inputs[1].grad):
        assert grad is not None and torch.isfinite(grad).all()


def test_200_generated_candidates_all_pass_the_contract():
    replies, _ = run(SymbolicProposer(seed=3), 200)
    generator = torch.Generator().manual_seed(0)
    for parsed in replies:
        assert parsed.repairs == (), parsed.repairs  # the symbolic proposer writes clean JSON
        assert static_check(parsed.code, PREFERENCE_CONTRACT) == [], parsed.code
        fn = load_function(parsed.code, PREFERENCE_CONTRACT)
        check_preference_contract(fn)  # the task's own unit checks
        check_contract(fn, 8, generator)
        check_contract(fn, 1, generator)
    names = [p.name for p in replies]
    assert len(set(names)) == len(names)
    assert all(n == n.lower() and n.replace("_", "").isalnum() for n in names)
    assert len({tree_from_code(p.code) for p in replies}) == len(replies)  # never repeats itself


def test_same_seed_and_history_give_the_same_reply():
    history = run(SymbolicProposer(seed=1), 12)[1]
    fresh_a, fresh_b = SymbolicProposer(seed=1), SymbolicProposer(seed=1)
    assert fresh_a.propose(request(history, 99)) == fresh_b.propose(request(history, 99))
    # a resumed proposer (empty memory) reads its own trees back from the code: the same replies as the original
    original = SymbolicProposer(seed=1)
    run(original, 12)
    assert original.propose(request(history, 99)).text == fresh_a.propose(request(history, 99)).text
    assert SymbolicProposer(seed=2).propose(request(history, 99)) != fresh_a.propose(request(history, 99))


def test_thought_names_parents_fitness_and_change():
    proposer = SymbolicProposer(seed=0)
    texts = [json.loads(proposer.propose(request(BASELINES, seed)).text) for seed in range(30)]
    assert all(list(t) == ["thought", "name", "code"] for t in texts)
    with_parents = [t["thought"] for t in texts if t["thought"].startswith("Parent")]
    assert with_parents
    for thought in with_parents:
        assert "fitness 0.9" in thought or "fitness 0.8" in thought
        assert "Change (" in thought and "Why:" in thought and "Expected effect:" in thought
    assert any("hinge (fitness 0.9270)" in t for t in with_parents)  # the best baseline is the usual parent


def test_search_climbs_the_proxy_fitness():
    baselines = [replace(c, fitness=proxy_fitness(load_function(c.code, PREFERENCE_CONTRACT))) for c in BASELINES]
    _, history = run(SymbolicProposer(seed=0), 40, baselines=baselines)
    best_found = max(c.fitness for c in history[len(baselines):] if c.fitness is not None)
    assert best_found > max(c.fitness for c in baselines) + 0.01


def test_formula_round_trip_and_known_trees():
    tree = Gate(0.05, Logistic("x", 1.0), Blend(0.25, Hinge("x", 1.5, 2.0), Logistic("xc", 0.5)))
    assert parse_formula(formula(tree)) == tree
    assert tree_from_code(render(tree)) == tree
    for name in ("dpo", "hinge", "ipo", "discopop", "cell", "padll", "bco_pair", "apo_zero"):
        ours = load_function(render(KNOWN_TREES[name]), PREFERENCE_CONTRACT)
        theirs = OBJECTIVES[name].fn
        inputs = [-torch.rand(16, generator=torch.Generator().manual_seed(i)) * 30 for i in range(4)]
        torch.testing.assert_close(ours(*inputs, 0.1), theirs(*inputs, 0.1), rtol=1e-4, atol=1e-5)


def test_canonical_folds_redundant_structure():
    hinge, anchor = Hinge("x", 1.0, 1.0), Saturating("xc", 1.0)
    assert canonical(SignWeighted(0.5, 1.0, SignWeighted(0.5, 0.8, hinge))) == SignWeighted(0.25, 0.8, hinge)
    assert canonical(Gate(0.1, hinge, hinge)) == hinge
    assert canonical(Blend(0.3, Logistic("x", 1.0), Blend(0.5, hinge, hinge))) == Blend(0.3, Logistic("x", 1.0), hinge)
    assert canonical(Sum(0.2, Sum(0.25, hinge, anchor), anchor)) == Sum(0.45, hinge, anchor)


@pytest.mark.parametrize("text", ["__import__('os')", "hinge(x, 1.0)", "hinge(y, 1.0, 1.0)", "dpo()", "1 + 2",
                                  "hinge(x, margin=1.0, scale=1.0)", "hinge(x, 1e999, 1.0)"])
def test_parse_formula_rejects_anything_else(text):
    assert parse_formula(text) is None


def test_foreign_code_and_empty_history():
    foreign = ScoredCandidate("my_llm_loss", "def loss(a, b, c, d, beta):\n    return (a - b) * 0\n", 0.99, "ok")
    reply = parse_reply(SymbolicProposer(seed=0).propose(request([foreign], 5)).text)
    assert load_function(reply.code, PREFERENCE_CONTRACT)
    first = parse_reply(make_proposer("symbolic", seed=0).propose(request([], 0)).text)
    assert load_function(first.code, PREFERENCE_CONTRACT)
    failed_only = [ScoredCandidate("broken", "def loss(:", None, "invalid")]
    assert parse_reply(SymbolicProposer().propose(request(failed_only, 1)).text).code


def test_side_by_side_proposals_get_distinct_names():
    """A generation asks several times with the same history: distinct trees must still get distinct names."""
    proposer = SymbolicProposer(seed=0)
    replies = [parse_reply(proposer.propose(request(BASELINES, seed)).text) for seed in range(40)]
    by_formula = {tree_from_code(r.code): r.name for r in replies}
    assert len(set(by_formula.values())) == len(by_formula) > 20
