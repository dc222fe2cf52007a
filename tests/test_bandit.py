"""Several proposers, one run: the bandit shifts its share to the proposer whose proposals earn more."""

from __future__ import annotations

import json

import pytest
from pathlib import Path

from llm2.discovery.bandit import ProposerBandit, choose
from llm2.discovery.config import DiscoveryConfig
from llm2.proposers import make_proposer
from test_discovery import run_discovery

EXAMPLE_TASK = f"{Path(__file__).parent / 'example_task.py'}:RobustRegression"


def replies(path: Path, codes: list[tuple[str, str]]) -> str:
    path.write_text("".join(json.dumps({"thought": "t", "name": name, "code": code}) + "\n" for name, code in codes))
    return str(path)


def good_and_bad_arms(folder: Path, replies_each: int) -> dict:
    """Two replay proposers: robust (absolute-error) losses beat the squared reference on outliers; a loss that
    ignores the target earns 0."""
    good = [(f"robust_{i}", f"def robust_{i}(prediction, target):\n    return {1 + i} * (prediction - target).abs()\n")
            for i in range(replies_each)]
    bad = [(f"blind_{i}", f"def blind_{i}(prediction, target):\n    return {1 + i} * prediction.abs()\n")
           for i in range(replies_each)]
    return {"replay:good": make_proposer("replay", path=replies(folder / "good.jsonl", good)),
            "replay:bad": make_proposer("replay", path=replies(folder / "bad.jsonl", bad))}


def test_the_bandit_gives_the_better_proposer_the_larger_share(tmp_path):
    arms = good_and_bad_arms(tmp_path, 10)
    config = DiscoveryConfig(task=EXAMPLE_TASK, proposer="replay", generations=10, population=1, seeds=1)
    archive, summary = run_discovery(tmp_path, config, ProposerBandit(dict(reversed(list(arms.items())))))
    assert summary.status == "finished"
    by_arm = {}
    for c in archive.candidates():
        if c.generation > 0:
            by_arm.setdefault(c.proposer, []).append(c)
    assert {c.name[:6] for c in by_arm["replay:good"]} == {"robust"}  # each proposal is recorded with its writer
    assert len(by_arm["replay:good"]) >= 7 and len(by_arm["replay:bad"]) <= 3, {k: len(v) for k, v in by_arm.items()}
    assert {r.request["proposer"] for r in archive.requests()} == {"replay:good", "replay:bad"}
    assert all(r.request["proposer"] == archive.candidate(r.candidate_id).proposer for r in archive.requests())
    # the bad arm was tried first (its order) and lost the share once the rewards were in
    assert archive.candidates()[-10].proposer == "replay:bad"


def test_an_untried_arm_is_tried_and_ucb_explores_a_starved_arm():
    labels = ("a", "b")
    assert choose({"a": [1.0], "b": []}, labels) == "b"
    assert choose({"a": [1.0] * 3, "b": [0.0]}, labels) == "a"
    assert choose({"a": [1.0] * 40, "b": [0.0]}, labels) == "b"  # its bonus grows with the pulls it was denied


def test_proposer_given_twice_on_the_command_line_runs_a_bandit(tmp_path):
    from llm2.archive import Archive
    from testkit import invoke_llm2

    good = replies(tmp_path / "good.jsonl", [(f"robust_{i}", f"def robust_{i}(prediction, target):\n"
                                              f"    return {1 + i} * (prediction - target).abs()\n") for i in range(4)])
    bad = replies(tmp_path / "bad.jsonl", [(f"blind_{i}", f"def blind_{i}(prediction, target):\n"
                                            f"    return {1 + i} * prediction.abs()\n") for i in range(4)])
    run_dir = tmp_path / "run"
    result = invoke_llm2("discover", "--task", EXAMPLE_TASK, "--proposer", "replay", "--replay", good,
                "--proposer", f"replay:{bad}", "--generations", "3", "--population", "1", "--seeds", "1",
                "--workers", "1", "--run-dir", str(run_dir))
    with Archive.open(run_dir, readonly=True) as archive:
        assert archive.run.config["more_proposers"] == [f"replay:{bad}"]
        writers = [c.proposer for c in archive.candidates() if c.generation > 0]
    assert writers[:2] == [f"replay:{good}", f"replay:{bad}"]  # each tried once, in the order given
    shares = [line for line in result.output.splitlines() if line.startswith("Proposer replay:")]
    assert len(shares) == 2 and f"{writers.count(f'replay:{good}')} proposals" in shares[0]


class PricedProposer:
    """A proposer with a spending cap, as the openai one keeps it: refuses once what was spent reaches the cap."""

    def __init__(self, name: str, cost: float, cap: float):
        self.name, self.cost, self.cap, self.spent_usd = name, cost, cap, 0.0

    def propose(self, request):
        from llm2.proposers.base import BudgetExceeded, Reply

        if self.spent_usd + self.cost > self.cap:
            raise BudgetExceeded(f"{self.spent_usd:.2f} USD spent")
        self.spent_usd += self.cost
        return Reply('{"thought": "", "name": "x", "code": ""}', cost_usd=self.cost)


def test_one_cap_counts_what_every_proposer_spent():
    from llm2.proposers.base import BudgetExceeded, ProposalRequest

    bandit = ProposerBandit({"a": PricedProposer("a", 0.4, 1.0), "b": PricedProposer("b", 0.4, 1.0)})
    bandit.spent_usd = 0.1  # what an earlier session spent, as the loop sets it on resume
    request = ProposalRequest(messages=(), history=(), temperature=0.0, seed=0)
    bandit.propose(request)  # no evidence yet: the first arm
    assert bandit.name == "a" and abs(bandit.spent_usd - 0.5) < 1e-9
    bandit.arms, bandit.labels = {"b": bandit.arms["b"]}, ("b",)  # then the other (as if a were dropped)
    bandit.propose(request)
    assert abs(bandit.spent_usd - 0.9) < 1e-9
    with pytest.raises(BudgetExceeded):  # b alone has spent 0.4, but the run 0.9: the next 0.4 is over the cap
        bandit.propose(request)


def test_one_max_cost_holds_for_several_proposers_across_resumes(tmp_path):
    from click.testing import CliRunner

    from fake_openai_server import FakeOpenAIServer, completion, good_reply_json
    from llm2.archive import Archive
    from llm2.cli import main

    def costly(received):  # 1000 prompt tokens at 0.1 USD per 1k: each reply costs 0.1
        name = f"idea_{len(server.requests)}"
        code = f"def {name}(prediction, target):\n    return {len(server.requests)}.0 * (prediction - target).abs()\n"
        return completion(good_reply_json(name, code=code), prompt_tokens=1000, completion_tokens=0,
                          model=received.body["model"])

    run_dir = tmp_path / "run"

    def discover(*options: str):
        result = CliRunner().invoke(main, ["discover", "--run-dir", str(run_dir), "--workers", "1", *options])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result

    with FakeOpenAIServer([], default=costly, models=("m1", "m2")) as server:
        first = discover("--task", EXAMPLE_TASK, "--seeds", "1", "--generations", "6", "--population", "1",
                         "--proposer", "openai", "--model", "m1", "--proposer", "openai:m2",
                         "--base-url", server.base_url, "--api-key-env", "NO_SUCH_KEY", "--price-prompt", "0.1",
                         "--max-cost", "0.25", "--max-tokens", "1")
        assert first.exit_code == 3 and "spending cap" in first.output, first.output
        # each proposer alone spent 0.1 and could buy another; the run's 0.2 cannot
        assert sorted(r.body["model"] for r in server.requests) == ["m1", "m2"]
    with FakeOpenAIServer([], default=costly, models=("m1", "m2")) as server:
        second = discover("--resume", "--base-url", server.base_url)  # the servers are checked first
        assert second.exit_code == 3 and "spending cap" in second.output, second.output
        assert server.requests == []  # what both spent before was counted: nothing more was bought
    with Archive.open(run_dir, readonly=True) as archive:
        assert abs(archive.spent_usd() - 0.2) < 1e-9
        assert sorted(c.proposer for c in archive.candidates() if c.generation > 0) == ["openai:m1", "openai:m2"]
