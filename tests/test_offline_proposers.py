"""The offline proposers on their shared base (llm2.proposers.offline): the same proposals as before the base, at the
same seeds; registered by the task that owns them; and an advice that changes what they sample."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

import llm2.proposers as proposers
from llm2.discovery import advice
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.prompts import PromptBook
from llm2.proposers import make_proposer
from llm2.proposers.base import Message, ProposalRequest, ScoredCandidate
from llm2.proposers.offline import WEIGHTS_LINE, advised_weights, history_outcomes, learnt_weights
from llm2.task_api.optional import optional
from llm2.task_api.registry import load_task
from offline_golden import CASES, GOLDEN, proposals
from test_discovery import run_discovery


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_same_proposals_at_the_same_seed(case):
    assert proposals(case) == json.loads(GOLDEN.read_text())[case]


ROBUST_TASK = f"{Path(__file__).parent / 'robust_offline.py'}:RobustRegressionWithProposer"


def test_the_proposer_layer_names_no_task_and_tasks_declare_their_own():
    code = Path(proposers.__file__).read_text().split('"""', 2)[2]  # past the module's doc
    assert not [word for word in ("llm2.tasks", "symbolic", "-offline", "merging", "classification", "reward")
                if word in code]
    for name in ("symbolic", "classification-offline", "merging-offline", "reward-design-offline"):
        assert make_proposer(name, seed=0).name == name  # the same names as before, found through the tasks
    outside = load_task(ROBUST_TASK)  # a task from a file, in no registry: found through the run's task
    assert outside.offline_proposer in optional(outside, "offline_proposers")
    assert make_proposer("robust-offline", task=outside, seed=0).name == "robust-offline"
    with pytest.raises(KeyError, match="unknown proposer 'robust-offline'"):
        make_proposer("robust-offline")


def test_an_advice_rewrite_changes_what_an_offline_proposer_samples():
    proposer = make_proposer("symbolic", seed=0)
    history = (ScoredCandidate("dpo", "", 0.7, "baseline"), ScoredCandidate("hinge", "", 0.72, "baseline"))
    mine = [json.loads(proposer.propose(ProposalRequest((Message("user", "go"),), history, 0.7, s)).text)
            for s in range(12)]
    fresh = [m["name"] for m in mine if "Change (fresh)" in m["thought"]]
    others = [m["name"] for m in mine if m["name"] not in fresh]
    assert fresh and others
    advice = proposer.rewrite_advice("Be bold.", worked=tuple(fresh), failed=tuple(others))
    assert advice.startswith("Be bold.\n" + WEIGHTS_LINE)
    weights = advised_weights(proposer.grammar.move_weights, ProposalRequest((Message("user", advice),), (), 0, 0))
    assert weights["fresh"] > proposer.grammar.move_weights["fresh"] and weights["tune"] < 0.28
    told = ProposalRequest((Message("user", "go\n" + advice),), history, 0.7, 99)
    moves = [json.loads(make_proposer("symbolic", seed=0).propose(replace(told, seed=s)).text)["thought"]
             .count("Change (fresh)") for s in range(40)]
    plain = [json.loads(make_proposer("symbolic", seed=0).propose(
        ProposalRequest((Message("user", "go"),), history, 0.7, s)).text)["thought"].count("Change (fresh)")
        for s in range(40)]
    assert sum(moves) > sum(plain)
    # the advice is untrusted text: unknown moves and wild numbers change nothing beyond the allowed factor
    wild = ProposalRequest((Message("user", f"{WEIGHTS_LINE} exec 99, fresh 1e9, tune 0"),), (), 0, 0)
    weights = advised_weights(proposer.grammar.move_weights, wild)
    assert set(weights) == set(proposer.grammar.move_weights) and max(weights.values()) <= 4 * 0.28


def test_without_advice_the_moves_learn_from_the_runs_own_history():
    """The symbolic proposer's moves are read back from its thoughts: fresh trees the race stopped (no fitness) and
    tunes trained to the top make it draw fresh less and tune more; a foreign or pending thought counts for nothing."""
    proposer = make_proposer("symbolic", seed=0)
    grammar = proposer.grammar
    baselines = (ScoredCandidate("dpo", "", 0.70, "baseline"), ScoredCandidate("hinge", "", 0.72, "baseline"))
    opening = (Message("user", "go"),)
    drafts = [json.loads(proposer.propose(ProposalRequest(opening, baselines, 0.7, s)).text) for s in range(40)]
    by_move = {move: [d for d in drafts if f"Change ({move}): " in d["thought"]] for move in ("fresh", "tune")}
    assert by_move["fresh"] and by_move["tune"]
    history = baselines + tuple(
        ScoredCandidate(d["name"], d["code"], None if move == "fresh" else 0.75, "ok", d["thought"])
        for move, drafts_of_move in by_move.items() for d in drafts_of_move)
    stranger = (ScoredCandidate("stranger", "x", None, "ok", "Change (exec): all of it"),
                ScoredCandidate("waiting", "y", None, "pending", by_move["tune"][0]["thought"]))
    outcomes = history_outcomes(grammar, history + stranger)
    assert sorted(set(outcomes)) == [("fresh", False), ("tune", True)]
    assert len(outcomes) == len(history) - 2  # neither the stranger nor the pending one counted
    weights = learnt_weights(grammar.move_weights, outcomes)
    assert weights["fresh"] < grammar.move_weights["fresh"] < grammar.move_weights["tune"] < weights["tune"]
    assert weights["fresh"] >= grammar.move_weights["fresh"] / 4  # never cut off: at most 4x less

    def fresh_share(seen: tuple[ScoredCandidate, ...]) -> int:
        replies = [make_proposer("symbolic", seed=0).propose(ProposalRequest(opening, seen, 0.7, 1000 + s))
                   for s in range(60)]  # a new proposer each time: as after a resume, only the history tells
        return sum("Change (fresh): " in json.loads(r.text)["thought"] for r in replies)

    assert fresh_share(history) < fresh_share(tuple(replace(c, fitness=0.75) for c in history))


def test_a_worse_advice_from_an_offline_proposer_is_rejected_and_the_old_one_kept(tmp_path):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    told = f"Mostly robust losses.\n{WEIGHTS_LINE} robust 0.95, blind 0.05"
    (prompts / "advice.txt").write_text(told + "\n")
    task = load_task(ROBUST_TASK)
    config = DiscoveryConfig(task=ROBUST_TASK, proposer="robust-offline", generations=3, population=2, seeds=1,
                             advice_every=1, prompt_dir=str(prompts))
    archive, summary = run_discovery(tmp_path, config, make_proposer("robust-offline", task=task, seed=0))
    assert summary.status == "finished"
    events = [e for e in archive.run_events() if e.kind.startswith("advice")]
    assert [e.kind for e in events][:2] == ["advice_proposed", "advice_reverted"]
    rewritten = events[0].detail["text"]
    assert WEIGHTS_LINE + " robust 0.95" not in rewritten and WEIGHTS_LINE in rewritten  # the base's own rewrite
    reverted = events[1].detail
    assert reverted["mean_reward_under_it"] < reverted["mean_reward_before"] and reverted["previous"] == told
    assert advice.state(archive, PromptBook(str(prompts))).kept == told
    kinds = {g: [c.name.split("_")[0] for c in archive.candidates() if c.generation == g] for g in (1, 2)}
    assert "blind" not in kinds[1] and "blind" in kinds[2]  # the trial's weights sampled the worse move more
