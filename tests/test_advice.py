"""A prompt that learns: a rewritten advice that does worse is rejected, visibly, and the old advice is kept."""

from __future__ import annotations

import json
from pathlib import Path

from llm2.discovery import advice
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.prompts import PromptBook
from llm2.proposers.base import ProposalRequest, Reply
from test_discovery import run_discovery

EXAMPLE_TASK = f"{Path(__file__).parent / 'example_task.py'}:RobustRegression"
GOOD_ADVICE = "Use robust losses: grow them from the absolute error."


class AdviceFollower:
    """An offline proposer that follows its advice: robust losses when told so, a loss blind to the target otherwise;
    asked to rewrite its advice, it answers (by rule) with a worse one."""

    name = "advice-follower"

    def __init__(self):
        self.count = 0
        self.advices: list[str] = []

    def propose(self, request: ProposalRequest) -> Reply:
        self.count += 1
        told = request.messages[-1].content
        self.advices.append(told.rsplit("\n", 1)[-1])
        body = "(prediction - target).abs()" if "robust" in told else "prediction.abs()"
        name = f"{'robust' if 'robust' in told else 'blind'}_{self.count}"
        code = f"def {name}(prediction, target):\n    return {self.count} * {body}\n"
        return Reply(json.dumps({"thought": "as advised", "name": name, "code": code}))

    def rewrite_advice(self, old: str, worked: tuple[str, ...], failed: tuple[str, ...]) -> str:
        return "Ignore the target; keep the loss small."


def test_a_worse_advice_is_rejected_and_the_old_one_kept(tmp_path):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "advice.txt").write_text(GOOD_ADVICE + "\n")
    config = DiscoveryConfig(task=EXAMPLE_TASK, proposer="advice-follower", generations=3, population=2, seeds=1,
                             advice_every=1, prompt_dir=str(prompts))
    proposer = AdviceFollower()
    archive, summary = run_discovery(tmp_path, config, proposer)
    assert summary.status == "finished"
    kinds = [(e.kind, e.detail.get("from_generation")) for e in archive.run_events() if e.kind.startswith("advice")]
    assert kinds == [("advice_proposed", 2), ("advice_reverted", None), ("advice_proposed", 3)]
    reverted = next(e.detail for e in archive.run_events() if e.kind == "advice_reverted")
    assert reverted["text"].startswith("Ignore the target") and reverted["previous"] == GOOD_ADVICE
    assert reverted["mean_reward_under_it"] < reverted["mean_reward_before"]  # the evidence, kept
    # generation 1 under the old advice, generation 2 under the trial; the old one is in force again after it
    names = {c.generation: [] for c in archive.candidates()}
    for c in archive.candidates():
        names[c.generation].append(c.name.split("_")[0])
    assert names[1] == ["robust", "robust"] and names[2] == ["blind", "blind"]
    assert advice.state(archive, PromptBook(str(prompts))).kept == GOOD_ADVICE
    assert proposer.advices[0] == GOOD_ADVICE


def test_a_run_without_advice_rewriting_sends_no_advice(tmp_path):
    config = DiscoveryConfig(task=EXAMPLE_TASK, proposer="advice-follower", generations=1, population=1, seeds=1)
    proposer = AdviceFollower()
    archive, _ = run_discovery(tmp_path, config, proposer)
    assert not [e for e in archive.run_events() if e.kind.startswith("advice")]
    assert "Advice for this proposal" not in "".join(r.request["messages"][-1]["content"] for r in archive.requests())
