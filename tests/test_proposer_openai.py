"""The openai proposer against a real local HTTP server that answers from a script."""

import json
import time

import pytest
from fake_openai_server import FakeOpenAIServer, Scripted, completion, error, good_reply_json

from llm2.discovery.ask import ask_for_candidate
from llm2.proposers import make_proposer
from llm2.proposers.base import BudgetExceeded, Message, ProposalRequest, ProposerError
from llm2.proposers.openai import OpenAIProposer

REQUEST = ProposalRequest(
    messages=(Message("system", "You invent losses."), Message("user", "Propose one.")),
    history=(), temperature=0.8, seed=1234)


def proposer(server, **options):
    settings = {"model": "test-model", "base_url": server.base_url, "api_key_env": "LLM2_TEST_KEY",
                "backoff_s": 0.01, "max_retries": 3, "timeout_s": 5}
    return OpenAIProposer(**{**settings, **options})


def test_good_reply_and_what_the_server_received(monkeypatch):
    monkeypatch.setenv("LLM2_TEST_KEY", "sk-test")
    with FakeOpenAIServer([completion(good_reply_json(), prompt_tokens=120, completion_tokens=40)]) as server:
        reply = proposer(server).propose(REQUEST)
    assert json.loads(reply.text)["name"] == "scripted_loss"
    assert (reply.prompt_tokens, reply.completion_tokens, reply.model) == (120, 40, "fake-model")
    [received] = server.requests
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == "Bearer sk-test"
    assert received.body["model"] == "test-model"
    assert received.body["temperature"] == 0.8 and received.body["seed"] == 1234
    assert received.body["messages"] == [{"role": "system", "content": "You invent losses."},
                                         {"role": "user", "content": "Propose one."}]
    assert received.body["response_format"] == {"type": "json_object"}
    assert "max_tokens" not in received.body


def test_no_key_sends_no_authorization_and_max_tokens_passes_through(monkeypatch):
    monkeypatch.delenv("LLM2_TEST_KEY", raising=False)
    with FakeOpenAIServer([completion(good_reply_json())]) as server:
        proposer(server, max_tokens=256, json_mode=False).propose(REQUEST)
    body = server.requests[0].body
    assert "authorization" not in server.requests[0].headers
    assert body["max_tokens"] == 256 and "response_format" not in body


def test_prose_wrapped_json_is_repaired_through_ask():
    text = f"Here is my idea:\n```json\n{good_reply_json(name='Wrapped Loss')}\n```\nThanks!"
    with FakeOpenAIServer([completion(text)]) as server:
        outcome = ask_for_candidate(proposer(server), REQUEST)
    assert outcome.parsed.name == "wrapped_loss"
    assert outcome.events == ("repair:json_fence", "repair:prose_wrapped", "repair:name_sanitised")
    assert len(server.requests) == 1


def test_missing_key_is_reasked_over_http_then_good():
    bad = json.dumps({"thought": "t", "code": "def loss(): pass"})
    with FakeOpenAIServer([completion(bad), completion(good_reply_json())]) as server:
        outcome = ask_for_candidate(proposer(server), REQUEST)
    assert outcome.parsed.name == "scripted_loss" and len(outcome.replies) == 2
    second = server.requests[1].body["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"] == bad
    assert "lacks the key 'name'" in second[3]["content"]


def test_429_honours_retry_after_then_succeeds():
    script = [error(429, "slow down", headers={"Retry-After": "1"}), completion(good_reply_json())]
    with FakeOpenAIServer(script) as server:
        start = time.monotonic()
        reply = proposer(server, backoff_s=0.001).propose(REQUEST)
        waited = time.monotonic() - start
    assert json.loads(reply.text)["name"] == "scripted_loss"
    assert len(server.requests) == 2
    assert waited >= 1.0  # the server's Retry-After, not the tiny backoff


def test_500_then_success():
    with FakeOpenAIServer([error(500, "boom"), completion(good_reply_json())]) as server:
        reply = proposer(server).propose(REQUEST)
    assert json.loads(reply.text)["code"]
    assert len(server.requests) == 2


def test_500_forever_gives_up_with_attempt_count():
    with FakeOpenAIServer([], default=error(503, "overloaded")) as server:
        with pytest.raises(ProposerError) as info:
            proposer(server, max_retries=3).propose(REQUEST)
    assert len(server.requests) == 4
    assert "gave up after 4 attempts" in str(info.value)
    assert "HTTP 503: overloaded" in str(info.value)


def test_slow_reply_times_out_then_retry_succeeds():
    script = [completion(good_reply_json(name="late"), delay_s=1.0), completion(good_reply_json(name="on_time"))]
    with FakeOpenAIServer(script) as server:
        reply = proposer(server, timeout_s=0.25).propose(REQUEST)
    assert json.loads(reply.text)["name"] == "on_time"
    assert len(server.requests) == 2


def test_always_slow_ends_in_a_timeout_error():
    with FakeOpenAIServer([], default=completion(good_reply_json(), delay_s=0.6)) as server:
        with pytest.raises(ProposerError, match=r"gave up after 2 attempts; last error: no answer within 0.2 s"):
            proposer(server, timeout_s=0.2, max_retries=1).propose(REQUEST)


def test_connection_refused_is_retried_then_reported():
    with FakeOpenAIServer([]) as server:
        url = server.base_url
    # the server is closed now: nothing listens on that port
    with pytest.raises(ProposerError, match=r"gave up after 3 attempts; last error: connection failed"):
        OpenAIProposer("m", base_url=url, backoff_s=0.01, max_retries=2).propose(REQUEST)


def test_400_on_response_format_retries_without_it_and_remembers():
    script = [error(400, "response_format is not supported by this model", param="response_format"),
              completion(good_reply_json()), completion(good_reply_json(name="again"))]
    with FakeOpenAIServer(script) as server:
        client = proposer(server)
        client.propose(REQUEST)
        second = client.propose(REQUEST)
    assert json.loads(second.text)["name"] == "again"
    bodies = [r.body for r in server.requests]
    assert bodies[0]["response_format"] == {"type": "json_object"}
    assert "response_format" not in bodies[1] and "response_format" not in bodies[2]
    assert client.json_mode is False


def test_other_400_is_not_retried():
    with FakeOpenAIServer([error(400, "context length exceeded")]) as server:
        with pytest.raises(ProposerError, match="HTTP 400: context length exceeded"):
            proposer(server).propose(REQUEST)
    assert len(server.requests) == 1


def test_401_fails_at_once_with_a_clear_message():
    with FakeOpenAIServer([error(401, "Incorrect API key provided: sk-bad")]) as server:
        with pytest.raises(ProposerError) as info:
            proposer(server).propose(REQUEST)
    assert len(server.requests) == 1
    assert "HTTP 401" in str(info.value) and "Incorrect API key provided" in str(info.value)
    assert "$LLM2_TEST_KEY" in str(info.value)


def test_non_completion_answer_is_a_clear_error():
    with FakeOpenAIServer([Scripted(200, "<html>proxy page</html>")]) as server:
        with pytest.raises(ProposerError, match="not a chat completion"):
            proposer(server).propose(REQUEST)


def test_tokens_and_cost_accounting():
    script = [completion(good_reply_json(), prompt_tokens=1000, completion_tokens=500),
              completion(good_reply_json(), prompt_tokens=2000, completion_tokens=0)]
    with FakeOpenAIServer(script) as server:
        client = proposer(server, price_prompt_per_1k=0.5, price_completion_per_1k=2.0)
        first, second = client.propose(REQUEST), client.propose(REQUEST)
    assert first.cost_usd == pytest.approx(0.5 + 1.0)
    assert second.cost_usd == pytest.approx(1.0)
    assert client.spent_usd == pytest.approx(2.5)
    assert (client.prompt_tokens, client.completion_tokens) == (3000, 500)


def test_no_prices_means_no_cost():
    with FakeOpenAIServer([completion(good_reply_json(), prompt_tokens=1000)]) as server:
        reply = proposer(server).propose(REQUEST)
    assert reply.cost_usd == 0.0 and reply.prompt_tokens == 1000


def test_spending_cap_stops_before_the_next_request():
    script = [completion(good_reply_json(), prompt_tokens=1000, completion_tokens=0)] * 3
    with FakeOpenAIServer(script) as server:
        client = proposer(server, price_prompt_per_1k=1.0, max_cost_usd=2.0)
        client.propose(REQUEST)
        client.propose(REQUEST)  # spent 2.0: the cap is reached
        with pytest.raises(BudgetExceeded, match=r"spending cap reached: \$2.0000 spent of the \$2.0000"):
            client.propose(REQUEST)
    assert len(server.requests) == 2  # the third request was never sent
    assert issubclass(BudgetExceeded, ProposerError)


def test_registry_builds_the_openai_proposer():
    built = make_proposer("openai", model="m", base_url="http://127.0.0.1:1/v1/")
    assert isinstance(built, OpenAIProposer) and built.url == "http://127.0.0.1:1/v1/chat/completions"
    with pytest.raises(KeyError, match="unknown proposer 'nope'; known proposers: hf, openai, replay, symbolic"):
        make_proposer("nope")
