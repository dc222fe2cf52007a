"""The outer loop end to end: offline with the symbolic proposer, and through a real local OpenAI-style server."""

from __future__ import annotations

import atexit
import json
import os

import pytest

from fake_openai_server import GOOD_CODE, FakeOpenAIServer, completion, error, good_reply_json
from llm2.archive import Archive
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.loop import Discovery
from llm2.discovery.run import create_run
from llm2.execution import make_executor
from llm2.proposers import make_proposer
from llm2.tasks import load_task
from tiny_preference_task import TINY_TASK

HINGE_CODE = (
    "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
    "    logits = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)\n"
    "    return torch.relu(1.0 - beta * logits)\n"
)
# The dpo code of GOOD_CODE with another local name, a comment and other line breaks: the same normalised code.
RENAMED_GOOD_CODE = (
    "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
    "    # same as before\n"
    "    z = beta * ((policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps))\n"
    "    return -F.logsigmoid(z)\n"
)
RAISING_CODE = (
    "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
    "    return undefined_helper(policy_chosen_logps)\n"
)


def run_discovery(tmp_path, config: DiscoveryConfig, proposer) -> tuple[Archive, object]:
    task = load_task(config.task)
    settings = task.settings_from_dict(config.task_settings)
    task.prepare(settings)
    archive = create_run(config, tmp_path / "run", task)
    summary = Discovery(config, task, archive, proposer, warm_pool(config, task, settings)).run()
    return archive, summary


_POOLS: dict[tuple, object] = {}


def warm_pool(config: DiscoveryConfig, task, settings):
    """Two warm workers, shared by every run of the session with the same task, timeout and environment: a pool
    starts interpreters that import torch and load the world (seconds each on two cores), and a discovery leaves
    its workers as it found them. Closed when the session ends."""
    key = (config.task, config.timeout_s, tuple(sorted(os.environ.items())))
    if key not in _POOLS:
        if not _POOLS:
            atexit.register(lambda: [pool.close() for pool in _POOLS.values()])
        _POOLS[key] = make_executor("local", task_spec=config.task, task=task, workers=2,
                                    timeout_s=config.timeout_s, warm_settings=settings)
    return _POOLS[key]


def assert_conversation_alternates(archive: Archive) -> None:
    roles = [m.role for m in archive.messages()]
    assert roles[0] == "system"
    assert all(a != b for a, b in zip(roles[1:], roles[2:])), roles
    assert roles[-1] == "user"


def test_symbolic_discovery_offline(tmp_path):
    config = DiscoveryConfig(task=TINY_TASK, generations=2, population=2, seeds=1, baselines=("dpo", "hinge"))
    archive, summary = run_discovery(tmp_path, config, make_proposer("symbolic", seed=0))
    candidates = archive.candidates()
    baselines = [c for c in candidates if c.generation == 0]
    proposals = [c for c in candidates if c.generation > 0]
    assert [c.name for c in baselines] == ["dpo", "hinge"]
    # the default fitness is the judge's gap to dpo's frontier: small either side of 0, the judge itself in (0, 1)
    assert all(c.status == "baseline" and abs(c.fitness) < 0.1 and 0.0 < c.metrics["judge"] < 1.0
               for c in baselines)
    assert [c.generation for c in proposals] == [1, 1, 2, 2]
    assert all(c.status in ("ok", "invalid", "failed", "timeout", "duplicate") for c in proposals)
    assert any(c.status == "ok" for c in proposals)
    assert all(c.feedback for c in proposals)
    assert summary.status == "finished" and summary.candidates == 4
    run = archive.run
    assert run.status == "finished" and run.finished_at >= run.started_at
    assert run.config["generations"] == 2 and run.seeds["training_seeds"] == [0]
    assert "torch" in run.versions and "python" in run.versions
    assert_conversation_alternates(archive)
    # every finished proposal has its reply and its feedback in the log
    logged = [m.candidate_id for m in archive.messages() if m.candidate_id is not None]
    assert sorted(set(logged)) == sorted(c.id for c in proposals)


def test_openai_discovery_against_a_scripted_server(tmp_path):
    prose = "Here is my idea:\n```json\n" + good_reply_json("hinge_idea", code=HINGE_CODE) + "\n```\nHope it helps."
    missing_key = json.dumps({"thought": "forgot the code", "name": "no_code"})
    script = [
        completion(good_reply_json("plain_dpo")),  # 1 ok
        completion(prose),  # 2 repaired, ok
        completion(missing_key), completion(good_reply_json("ipo_like", code=GOOD_CODE.replace(
            "-F.logsigmoid(x)", "(x / beta - 1 / (2 * beta)) ** 2"))),  # 3 re-asked, then ok
        completion(good_reply_json("raises", code=RAISING_CODE)),  # 4 rejected at the contract stage
        error(429, headers={"Retry-After": "0"}), completion(good_reply_json("renamed", code=RENAMED_GOOD_CODE)),
        error(500), completion(good_reply_json("after_500", code=GOOD_CODE.replace(
            "-F.logsigmoid(x)", "torch.exp(-x)").replace("def loss(", "def scaled_exponential("))),  # any name
        completion(good_reply_json("too_slow"), delay_s=2.0),  # the client gives up and retries
        completion(good_reply_json("after_timeout", code=GOOD_CODE.replace("-F.logsigmoid(x)",
                                                                            "-F.logsigmoid(x) + 0.1 * x * x"))),
        completion("I would rather not."), completion("Still no JSON."), completion("{broken"),  # 8 unusable
    ]
    # kto_pair: a baseline none of the scripted losses behaves like (a behavioural duplicate of a baseline is not
    # evaluated, which is not what this test is about)
    config = DiscoveryConfig(task=TINY_TASK, proposer="openai", generations=8, population=1, seeds=1,
                             baselines=("kto_pair",), proposer_options={"model": "fake-model"}, temperature=0.3)
    with FakeOpenAIServer(script) as server:
        proposer = make_proposer("openai", model="fake-model", base_url=server.base_url, api_key_env="NO_SUCH_KEY",
                                 request_timeout_s=0.5, max_retries=3, backoff_s=0.01)
        archive, summary = run_discovery(tmp_path, config, proposer)
    proposals = [c for c in archive.candidates() if c.generation > 0]
    assert [(c.name, c.status) for c in proposals] == [
        ("plain_dpo", "ok"), ("hinge_idea", "ok"), ("ipo_like", "ok"), ("raises", "invalid"),
        ("renamed", "duplicate"), ("after_500", "ok"), ("after_timeout", "ok"), ("unusable_reply", "invalid")]
    by_name = {c.name: c for c in proposals}
    assert by_name["renamed"].duplicate_of == by_name["plain_dpo"].id
    assert "plain_dpo" in by_name["renamed"].feedback
    assert any(e.startswith("repair:") for e in by_name["hinge_idea"].reply_events)
    assert any(e.startswith("reask:") for e in by_name["ipo_like"].reply_events)
    assert "undefined_helper" in by_name["raises"].error
    unusable = by_name["unusable_reply"]
    assert unusable.stage == "reply" and "3 attempts" in unusable.error
    assert sum(e.startswith("reask:") for e in unusable.reply_events) == 2
    assert by_name["ipo_like"].prompt_tokens == 20  # two replies of 10 prompt tokens each
    assert all(r.body["model"] == "fake-model" and r.body["temperature"] == 0.3 for r in server.requests)
    # the proposer is shown each result: the request after "raises" carries its rejection reason
    later_prompts = [json.dumps(r.body["messages"]) for r in server.requests[6:]]
    assert any("undefined_helper" in p for p in later_prompts)
    assert_conversation_alternates(archive)
    assert summary.status == "finished"


def test_topk_history_stays_bounded(tmp_path):
    config = DiscoveryConfig(task=TINY_TASK, generations=4, population=2, seeds=1, baselines=("dpo",),
                             history="topk", top_k=2, recent=1)
    archive, _ = run_discovery(tmp_path, config, make_proposer("symbolic", seed=3))
    from llm2.discovery.conversation import request_messages
    from llm2.discovery.prompts import PromptBook

    messages = request_messages(archive, config, PromptBook(), load_task(config.task).metrics_text)
    # system, opening with the top-2 summary, then the latest candidate's reply and feedback
    assert [m.role for m in messages][:2] == ["system", "user"]
    assert len(messages) <= 2 + 2 * 3  # one recent candidate, with at most two re-asks
    assert "best 2 candidates" in messages[1].content or "best 1 candidates" in messages[1].content
    assert messages[-1].role == "user"


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="history must be"):
        DiscoveryConfig(history="everything")
    with pytest.raises(ValueError, match="population must be at least 1"):
        DiscoveryConfig(population=0)
