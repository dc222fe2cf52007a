"""Behavioural duplicates end to end: hinge losses that differ only by a positive scale are trained once."""

from __future__ import annotations

from fake_openai_server import FakeOpenAIServer, completion, good_reply_json
from test_discovery import run_discovery
from tiny_preference_task import TINY_TASK
from llm2.archive.search_tables import behaviour_duplicates, fingerprints
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.progress import Progress
from llm2.proposers import make_proposer


def hinge(margin: float, scale: float) -> str:
    return (
        "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
        "    x = beta * ((policy_chosen_logps - reference_chosen_logps)\n"
        "                - (policy_rejected_logps - reference_rejected_logps))\n"
        f"    return torch.relu({margin} - {scale} * x)\n")


def test_scaled_hinges_are_evaluated_once_and_another_margin_is_not_merged(tmp_path):
    # relu(4 - a·x) for a in (1, 0.5, 1.5): the hinge point 4/a lies beyond every margin the probe (and training)
    # visits, so the gradients differ only by the factor a, which Adam cannot see; relu(1 - x) stops pushing at x = 1
    names = ["hinge_a1", "hinge_a05", "hinge_a15", "margin_one"]
    codes = [hinge(4.0, 1.0), hinge(4.0, 0.5), hinge(4.0, 1.5), hinge(1.0, 1.0)]
    script = [completion(good_reply_json(name, code=code)) for name, code in zip(names, codes)]
    # on the small world: duplicates are told by behaviour on a fixed probe batch, whatever the world and fitness
    config = DiscoveryConfig(task=TINY_TASK, proposer="openai", generations=4, population=1, seeds=1,
                             baselines=("dpo",), proposer_options={"model": "fake-model"})
    with FakeOpenAIServer(script) as server:
        proposer = make_proposer("openai", model="fake-model", base_url=server.base_url, api_key_env="NO_SUCH_KEY")
        archive, summary = run_discovery(tmp_path, config, proposer)
    by_name = {c.name: c for c in archive.candidates() if c.generation > 0}
    assert [by_name[n].status for n in names] == ["ok", "duplicate", "duplicate", "ok"]
    original = by_name["hinge_a1"]
    for name in ("hinge_a05", "hinge_a15"):
        duplicate = by_name[name]
        assert duplicate.duplicate_of == original.id and duplicate.seconds is None  # never trained
        assert duplicate.fitness == original.fitness  # given the original's score
        assert '"hinge_a1"' in duplicate.feedback and "positive factor" in duplicate.feedback
    assert behaviour_duplicates(archive) == {by_name["hinge_a05"].id: original.id,
                                             by_name["hinge_a15"].id: original.id}
    # every evaluated candidate (baseline included) has its fingerprint kept
    assert {f.candidate_id for f in fingerprints(archive)} >= {original.id, by_name["margin_one"].id}
    assert summary.evaluated == 2 and summary.status == "finished"


def test_progress_counts_behavioural_duplicates():
    import io

    progress = Progress(1, stream=io.StringIO())
    progress.record(status="duplicate", name="a", fitness=None, seconds=0.0, evals=0)
    progress.record(status="duplicate", name="b", fitness=None, seconds=0.0, evals=0, behavioural=True)
    assert "2 duplicates (1 by behaviour)" in progress.line()
