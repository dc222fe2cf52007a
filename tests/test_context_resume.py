"""A prompt budget learnt from a server's refusal outlives the session: a resumed run starts from it, so its first
request is within the server's context, not refused again. Against a real local HTTP server with a small context."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from fake_openai_server import FakeOpenAIServer, Received, completion, error, good_reply_json
from testkit import invoke_llm2

from llm2.archive import Archive, RunEvent
from llm2.cli import main
from llm2.discovery import context
from llm2.proposers.base import Message

EXAMPLE_TASK = f"{Path(__file__).parent / 'example_task.py'}:RobustRegression"
MAX_TOKENS = 200
PADDING = "An idea worth trying on data with outliers, written out at some length. " * 6


class SmallContext:
    """Counts characters / 4 and refuses, stating its context, a prompt that leaves no room for max_tokens; its
    context is the opening (the first prompt) plus room for about two turns. Once it has refused a prompt and then
    answered ``stop_after`` in all, it fails the next request once (a plain bad request), which stops the run."""

    def __init__(self, stop_after: int) -> None:
        self.limit: int | None = None
        self.refused = self.answered = 0
        self.stop_after: int | None = stop_after

    def __call__(self, received: Received) -> object:
        tokens = sum(len(m["content"]) for m in received.body["messages"]) // 4
        self.limit = self.limit or tokens + 600 + MAX_TOKENS
        if self.refused and self.answered == self.stop_after:
            self.stop_after = None
            return error(400, "the server is going down for maintenance")
        if tokens + MAX_TOKENS > self.limit:
            self.refused += 1
            return error(400, f"This model's maximum context length is {self.limit} tokens. However, you requested "
                              f"{tokens + MAX_TOKENS} tokens. Please reduce the length of the messages.")
        self.answered += 1
        number = self.answered
        code = f"def robust_{number}(prediction, target):\n    return {1 + number / 10} * (prediction - target).abs()\n"
        return completion(good_reply_json(f"robust_{number}", thought=PADDING, code=code))


def test_a_stopped_run_resumes_from_the_budget_its_server_taught_it(tmp_path):
    rule, run_dir = SmallContext(stop_after=5), tmp_path / "run"
    with FakeOpenAIServer([], default=rule) as server:  # the server stays up; the run stops and is resumed
        stopped = CliRunner().invoke(main, [
            "discover", "--task", EXAMPLE_TASK, "--proposer", "openai", "--model", "fake-model", "--base-url",
            server.base_url, "--api-key-env", "NO_SUCH_KEY", "--max-tokens", str(MAX_TOKENS), "--history", "full",
            "--generations", "8", "--population", "1", "--seeds", "1", "--workers", "1", "--run-dir", str(run_dir)])
        assert stopped.exit_code == 3 and "going down" in stopped.output, stopped.output[-2000:]
        assert rule.refused >= 1  # the first session learnt the budget the hard way
        with Archive.open(run_dir, readonly=True) as archive:
            assert archive.run.status == "stopped"
            assert sum(1 for c in archive.candidates() if c.generation > 0) == 5
            learnt = [e.detail for e in archive.run_events() if e.kind == "prompt_shrunk"]
            first_session = len(archive.requests())
        budget = learnt[-1]["budget_tokens"]
        assert budget == rule.limit - MAX_TOKENS

        refused_before, received_before = rule.refused, len(server.requests)
        invoke_llm2("discover", "--run-dir", str(run_dir), "--resume")
        resumed = server.requests[received_before:]
    assert rule.refused == refused_before  # no new refusal: the first request of the resumed run already fit
    with Archive.open(run_dir, readonly=True) as archive:
        assert archive.run.status == "finished"
        assert sum(1 for c in archive.candidates() if c.generation > 0) == 8
        assert len([e for e in archive.run_events() if e.kind == "prompt_shrunk"]) == len(learnt)
        requests = archive.requests()[first_session:]
        assert len(requests) == len(resumed) == 3 and not any(r.error for r in requests)
        first = tuple(Message(m["role"], m["content"]) for m in requests[0].request["messages"])
    assert context.estimate_tokens(first) <= budget
    # the budget, not luck, kept it small: the whole conversation (the opening, then each of the 5 proposals' reply
    # and feedback) was not sent
    assert len(resumed[0].body["messages"]) < 2 + 2 * 5, [m["role"] for m in resumed[0].body["messages"]]


def test_the_last_budget_of_each_proposer_wins_and_a_new_server_forgets_them():
    def event(kind: str, **detail) -> RunEvent:
        return RunEvent(0, 0.0, kind, detail)

    def resumed(before: dict, after: dict) -> RunEvent:
        return event("resumed", changed={"proposer_options": {"from": before, "to": after}})

    shrunk = [event("prompt_shrunk", proposer="openai:a", budget_tokens=900),
              event("prompt_shrunk", proposer="openai:b", budget_tokens=700),
              event("prompt_shrunk", proposer="openai:a", budget_tokens=600),
              event("prompt_shrunk", proposer="openai:b", budget_tokens="700"),  # not a number: not taken
              event("prompt_shrunk", budget_tokens=500)]  # no proposer named: not taken
    assert context.learnt_budgets(shrunk) == {"openai:a": 600, "openai:b": 700}
    same_server = resumed({"model": "m", "max_cost_usd": 1.0}, {"model": "m", "max_cost_usd": 2.0})
    assert context.learnt_budgets([*shrunk, same_server]) == {"openai:a": 600, "openai:b": 700}
    for change in ({"model": "other"}, {"base_url": "http://elsewhere/v1"}, {"max_tokens": 4000}):
        moved = resumed({"model": "m"}, {"model": "m", **change})
        assert context.learnt_budgets([*shrunk, moved]) == {}
        assert context.learnt_budgets([*shrunk, moved, shrunk[0]]) == {"openai:a": 900}


def test_a_proposers_own_context_from_its_config_bounds_its_first_prompts(tmp_path):
    """--proposer-config's context_tokens for one proposer: its prompts fit from the first, where the same run
    without it is refused once to learn; and it is taken over the run's own --context-tokens."""

    def discover(server, run_dir: Path, *extra: str) -> None:
        invoke_llm2("discover", "--task", EXAMPLE_TASK, "--api-key-env", "NO_SUCH_KEY", "--max-tokens",
                    str(MAX_TOKENS), "--history", "full", "--generations", "6", "--population", "1", "--seeds", "1",
                    "--workers", "1", "--run-dir", str(run_dir), *extra)

    learning = SmallContext(stop_after=None)
    with FakeOpenAIServer([], default=learning) as server:
        discover(server, tmp_path / "learning", "--proposer", "openai", "--model", "fake-model", "--base-url",
                 server.base_url)
    assert learning.refused >= 1  # without a known context the run learns it from a refusal

    told = SmallContext(stop_after=None)
    told.limit = learning.limit  # the same model: the same context, now known beforehand
    with FakeOpenAIServer([], default=told) as server:
        config = tmp_path / "proposers.toml"
        config.write_text(f'[[proposer]]\nname = "openai"\nmodel = "fake-model"\nbase_url = "{server.base_url}"\n'
                          f"context_tokens = {told.limit}\n")
        discover(server, tmp_path / "told", "--proposer-config", str(config), "--context-tokens", "100000")
        longest = max(len(r.body["messages"]) for r in server.requests)
    assert told.refused == 0 and told.answered == 6
    assert longest < 2 + 2 * 5  # the budget trimmed the full history: not luck
    with Archive.open(tmp_path / "told", readonly=True) as archive:
        assert archive.run.status == "finished"
        assert archive.run.config["proposer_options"]["context_tokens"] == told.limit  # recorded, for --resume
