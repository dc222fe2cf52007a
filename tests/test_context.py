"""The proposer's prompt within a token budget: a real local server with a small context refuses long prompts with
HTTP 400; the run shrinks the prompt, asks again and finishes."""

from __future__ import annotations

import json

from fake_openai_server import GOOD_CODE, FakeOpenAIServer, Received, completion, error, good_reply_json
from testkit import invoke_llm2
from tiny_preference_task import TINY_TASK
from llm2.archive import Archive
from llm2.discovery import context
from llm2.proposers.base import ContextTooLong, Message, context_error

SERVER_CHARS_PER_TOKEN = 4  # how this server counts tokens
HEADROOM_TOKENS = 700  # its context: the opening prompt plus this much


class SmallContext:
    """Answers every chat request with a dpo reply, or a 400 once the prompt is over its context (set from the
    first prompt, which is the opening alone)."""

    def __init__(self) -> None:
        self.limit: int | None = None
        self.refused = 0
        self.largest_accepted = 0

    def __call__(self, received: Received) -> object:
        tokens = sum(len(m["content"]) for m in received.body["messages"]) // SERVER_CHARS_PER_TOKEN
        self.limit = self.limit or tokens + HEADROOM_TOKENS
        if tokens > self.limit:
            self.refused += 1
            return error(400, f"This model's maximum context length is {self.limit} tokens. However, you requested "
                              f"{tokens} tokens in the messages. Please reduce the length of the messages.")
        self.largest_accepted = max(self.largest_accepted, tokens)
        return completion(good_reply_json(f"idea_{self.refused}_{tokens}", code=GOOD_CODE))


def test_full_history_against_a_small_context_shrinks_and_finishes(tmp_path):
    server_rule = SmallContext()
    run_dir = tmp_path / "run"
    with FakeOpenAIServer([], default=server_rule) as server:
        invoke_llm2("discover", "--proposer", "openai", "--model", "fake-model", "--base-url", server.base_url,
                    "--api-key-env", "NO_SUCH_KEY", "--max-tokens", "200", "--history", "full", "--generations", "10",
                    "--population", "1", "--seeds", "1", "--task", TINY_TASK, "--run-dir", str(run_dir))
    assert server_rule.refused >= 1 and server_rule.largest_accepted <= server_rule.limit
    with Archive.open(run_dir, readonly=True) as archive:
        proposals = [c for c in archive.candidates() if c.generation > 0]
        assert len(proposals) == 10 and all(c.code for c in proposals)  # no proposal lost to the context
        refusals = [r for r in archive.requests() if r.error]
        assert len(refusals) == server_rule.refused  # every refused request is recorded, with the server's words
        assert all("maximum context length" in r.error for r in refusals)
        shrunk = [e for e in archive.run_events() if e.kind == "prompt_shrunk"]
        assert shrunk and shrunk[-1].detail["budget_tokens"] < server_rule.limit
        assert archive.run.status == "finished"
        # the last request still carries the task card (the opening) and the older candidates in a line each
        last = archive.requests()[-1].request["messages"]
        assert last[0]["role"] == "system" and "Earlier candidates in one line each" in json.dumps(last)


def test_context_errors_are_recognised_and_the_budget_shrinks():
    vllm = context_error(400, "This model's maximum context length is 8192 tokens. However, you requested 9386 "
                              "tokens (8386 in the messages, 1000 in the completion).")
    assert vllm is not None and vllm.limit_tokens == 8192
    assert context_error(400, "the request exceeds the available context size, try increasing it").limit_tokens \
        is None
    assert context_error(400, "temperature must be between 0 and 2") is None
    assert context_error(500, "maximum context length is 10 tokens") is None  # only a refusal of the request
    sent = (Message("user", "x" * 35_000),)  # 8,758 tokens by the estimate
    assert context.shrunk_budget(sent, ContextTooLong("too long"), None) == 6_130  # 0.7 of 8,758
    assert context.shrunk_budget(sent, ContextTooLong("too long", 8192), 1000) == 7192
    assert context.shrunk_budget(sent, ContextTooLong("too long", 80_000), 1000) == 8_757  # under what was refused


def test_the_context_the_server_reports_is_taken():
    from fake_openai_server import Scripted

    from llm2.proposers.openai import OpenAIProposer

    listing = Scripted(200, {"object": "list", "data": [
        {"id": "other", "object": "model", "created": 0, "owned_by": "x", "max_model_len": 1},
        {"id": "fake-model", "object": "model", "created": 0, "owned_by": "x", "max_model_len": 4096}]})
    with FakeOpenAIServer([], models=listing) as server:
        proposer = OpenAIProposer("fake-model", base_url=server.base_url, api_key_env="NO_SUCH_KEY")
        assert proposer.context_tokens is None
        proposer.check()
        assert proposer.context_tokens == 4096  # vLLM's field, for the model asked for
