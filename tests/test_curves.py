"""Training curves as feedback: the task's words for what a candidate's curves show reach the proposer's prompt, and
the archive keeps the curves."""

from __future__ import annotations

import json
import math

from fake_openai_server import FakeOpenAIServer, completion, good_reply_json
from test_discovery import run_discovery
from tiny_preference_task import TINY_TASK
from llm2.archive.search_tables import curves
from llm2.curves import clean_curves
from llm2.discovery.config import DiscoveryConfig
from llm2.proposers import make_proposer

# Minimising both log-probabilities pushes the policy ever further from the reference: the log-ratios run off.
RUNAWAY_CODE = (
    "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
    "    return policy_chosen_logps + policy_rejected_logps\n")


_RUNAWAY_RUN: list = []


def runaway_run(tmp_path_factory):
    """(archive, requests the proposer received) of a discovery whose first proposal runs away, then dpo again, its
    proposer sending pictures: run once per session, read by this file and test_proposer_images (seconds each)."""
    if not _RUNAWAY_RUN:
        script = [completion(good_reply_json("runaway", code=RUNAWAY_CODE)),
                  completion(good_reply_json("dpo_again"))]
        # the default world: the small one trains too few steps for the log-ratios to run off that far; the judge
        # traces no dpo frontier (minutes on a fresh cache, and nothing the curves need)
        config = DiscoveryConfig(proposer="openai", generations=2, population=1, seeds=1, baselines=("dpo",),
                                 task_settings={"fitness": "judge"},
                                 proposer_options={"model": "fake-model", "images": True})
        with FakeOpenAIServer(script) as server:
            proposer = make_proposer("openai", model="fake-model", base_url=server.base_url,
                                     api_key_env="NO_SUCH_KEY", images=True)
            archive, _ = run_discovery(tmp_path_factory.mktemp("runaway"), config, proposer)
        _RUNAWAY_RUN.append((archive, list(server.requests)))
    return _RUNAWAY_RUN[0]


def test_the_prompt_after_a_diverging_candidate_says_what_its_curves_show(tmp_path_factory):
    archive, requests = runaway_run(tmp_path_factory)
    runaway = next(c for c in archive.candidates() if c.name == "runaway")
    assert "running away from the reference" in runaway.feedback
    assert "running away from the reference" in json.dumps(requests[-1].body["messages"])
    kept = curves(archive, runaway.id)
    assert list(kept) == [0] and {"step", "loss", "margin", "chosen_logratio", "rejected_logratio"} <= set(kept[0])
    assert kept[0]["rejected_logratio"][-1] < -30  # the curve itself shows the run-off
    dpo = next(c for c in archive.candidates() if c.name == "dpo")
    assert curves(archive, dpo.id)[0]["loss"]  # baselines keep theirs too (the report draws them)


def test_curves_from_a_child_are_cleaned():
    sent = {"loss": [1.0, "x", float("inf"), True], "Bad Name": [1.0], "margin": "not a list",
            **{f"c{i}": [0.0] for i in range(20)}}
    cleaned = clean_curves(sent)
    assert cleaned["loss"][0] == 1.0 and all(math.isnan(v) for v in cleaned["loss"][1:])
    assert "Bad Name" not in cleaned and "margin" not in cleaned and len(cleaned) <= 8
    assert clean_curves("nothing") == {} and clean_curves({"loss": list(range(1000))})["loss"][-1] == 255.0


def test_the_report_draws_the_curves_per_candidate(tmp_path):
    from llm2.report.build import build_report

    script = [completion(good_reply_json("runaway", code=RUNAWAY_CODE))]
    config = DiscoveryConfig(task=TINY_TASK, proposer="openai", generations=1, population=1, seeds=1,
                             baselines=("dpo",), proposer_options={"model": "fake-model"})
    with FakeOpenAIServer(script) as server:
        proposer = make_proposer("openai", model="fake-model", base_url=server.base_url, api_key_env="NO_SUCH_KEY")
        archive, _ = run_discovery(tmp_path, config, proposer)
    archive.close()
    page = build_report(tmp_path / "run").read_text(encoding="utf-8")
    assert "Training curves of the best candidates" in page
    assert (tmp_path / "run" / "report" / "training_curves.png").stat().st_size > 1000


def test_a_loss_that_turns_non_finite_is_told_when():
    from llm2.tasks.preference.curves_text import describe_curves

    text = describe_curves({"step": [0.0, 10.0, 20.0], "loss": [0.69, 0.4, float("nan")],
                            "margin": [0.0, 0.3, 0.5], "chosen_logratio": [0.0, 2.0, 45.0],
                            "rejected_logratio": [0.0, -1.0, -2.0]})
    assert "became non-finite after step 10" in text
    assert "passed +30 nats after step 20" in text and "a sign of divergence" in text
