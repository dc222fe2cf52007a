"""The openai proposer (built on the openai package) against a real local HTTP server that answers from a script."""

import email.utils
import json
import math
import time

import httpx
import pytest
from fake_openai_server import FakeOpenAIServer, Scripted, completion, error, good_reply_json

from llm2.discovery.ask import ask_for_candidate
from llm2.discovery.parse import ReplyError, parse_reply
from llm2.proposers import make_proposer
from llm2.proposers.base import (
    BudgetExceeded,
    Message,
    ProposalRequest,
    ProposerError,
    Reply,
    check_before_run,
)
from llm2.proposers.openai import OpenAIProposer, retry_after_seconds

REQUEST = ProposalRequest(
    messages=(Message("system", "You invent losses."), Message("user", "Propose one.")),
    history=(), temperature=0.8, seed=1234)
REQUEST_CHARS = len("You invent losses.") + len("Propose one.")

# What OpenAI answers a reasoning model asked for a temperature, and for max_tokens.
TEMPERATURE_REJECTED = error(400, "Unsupported value: 'temperature' does not support 0.8 with this model. Only the "
                                  "default (1) value is supported.", param="temperature")
MAX_TOKENS_REJECTED = error(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                                 "'max_completion_tokens' instead.", param="max_tokens")


def ask(client, request=REQUEST):
    """ask_for_candidate with a plain re-ask text and a recorder that only numbers the replies."""
    recorded = []

    def record(attempt, payload, reply, error):
        recorded.append((attempt, payload, reply, error))
        return len(recorded)

    return ask_for_candidate(client, request, reask=lambda reason: f"Fix this: {reason}", record=record)


def proposer(server, **options):
    settings = {"model": "test-model", "base_url": server.base_url, "api_key_env": "LLM2_TEST_KEY",
                "backoff_s": 0.01, "max_retries": 3, "request_timeout_s": 5}
    return OpenAIProposer(**{**settings, **options})


# --- a good exchange ----------------------------------------------------------------------------------------------

def test_good_reply_and_what_the_server_received(monkeypatch):
    monkeypatch.setenv("LLM2_TEST_KEY", "sk-test")
    with FakeOpenAIServer([completion(good_reply_json(), prompt_tokens=120, completion_tokens=40)]) as server:
        reply = proposer(server).propose(REQUEST)
    assert json.loads(reply.text)["name"] == "scripted_loss"
    assert (reply.prompt_tokens, reply.completion_tokens, reply.model, reply.finish_reason) == (
        120, 40, "fake-model", "stop")
    [received] = server.requests
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == "Bearer sk-test"
    assert received.headers["accept-encoding"] == "identity"  # so that the size cap counts the real bytes
    assert received.body["model"] == "test-model"
    assert received.body["temperature"] == 0.8 and received.body["seed"] == 1234
    assert received.body["messages"] == [{"role": "system", "content": "You invent losses."},
                                         {"role": "user", "content": "Propose one."}]
    assert received.body["response_format"] == {"type": "json_object"}
    assert "max_tokens" not in received.body


def test_no_key_sends_no_authorization_and_max_tokens_passes_through(monkeypatch):
    monkeypatch.delenv("LLM2_TEST_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")  # the openai package's own default variable
    with FakeOpenAIServer([completion(good_reply_json())]) as server:
        proposer(server, max_tokens=256, json_mode=False).propose(REQUEST)
    body = server.requests[0].body
    assert "authorization" not in server.requests[0].headers
    assert body["max_tokens"] == 256 and "response_format" not in body


def test_prose_wrapped_json_is_repaired_through_ask():
    text = f"Here is my idea:\n```json\n{good_reply_json(name='Wrapped Loss')}\n```\nThanks!"
    with FakeOpenAIServer([completion(text)]) as server:
        outcome = ask(proposer(server))
    assert outcome.parsed.name == "wrapped_loss"
    assert outcome.events == ("repair:json_fence", "repair:prose_wrapped", "repair:name_sanitised")
    assert len(server.requests) == 1


def test_missing_key_is_reasked_over_http_then_good():
    bad = json.dumps({"thought": "t", "code": "def loss(): pass"})
    with FakeOpenAIServer([completion(bad), completion(good_reply_json())]) as server:
        outcome = ask(proposer(server))
    assert outcome.parsed.name == "scripted_loss" and len(outcome.replies) == 2
    second = server.requests[1].body["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"] == bad
    assert "lacks the key 'name'" in second[3]["content"]


# --- thinking -----------------------------------------------------------------------------------------------------

def test_a_draft_inside_think_is_never_taken_over_http():
    draft = good_reply_json(name="draft_in_thinking")
    text = f"<think>\nFirst idea: {draft}\nNo, better:\n</think>\n{good_reply_json(name='final_answer')}"
    with FakeOpenAIServer([completion(text)]) as server:
        outcome = ask(proposer(server))
    assert outcome.parsed.name == "final_answer"
    assert outcome.events == ("repair:think_stripped",)


def test_parse_reply_strips_thinking():
    answer = good_reply_json(name="answer")
    parsed = parse_reply(f"<think>{good_reply_json(name='draft')}</think>{answer}")
    assert parsed.name == "answer" and parsed.repairs == ("think_stripped",)
    # several blocks, upper case tags
    assert parse_reply(f"<THINK>a</THINK> <think>{{'x': 1}}</think>\n{answer}").name == "answer"
    # a chat template that opened the thinking in the prompt: only the closing tag is in the reply
    assert parse_reply(f"hmm, {good_reply_json(name='draft')} maybe</think>\n{answer}").name == "answer"
    # no thinking: nothing stripped, no tag
    assert parse_reply(answer).repairs == ()


def test_a_reply_cut_off_while_thinking_is_a_clear_reply_error():
    with pytest.raises(ReplyError, match=r"only thinking"):
        parse_reply(f"<think>Let me draft {good_reply_json(name='draft')} and then")
    with pytest.raises(ReplyError, match=r"only thinking"):
        parse_reply("<think>done</think>  \n")


# --- the deadline and the size cap ---------------------------------------------------------------------------------

def test_a_trickling_body_cannot_outlive_the_deadline():
    # 5 bytes every 0.05 s: each socket wait is short, so only an overall deadline ends it (the whole body would
    # take about 10 s to arrive).
    body = completion(good_reply_json(), trickle_s=0.05, chunk_bytes=5)
    with FakeOpenAIServer([], default=body) as server:
        start = time.monotonic()
        with pytest.raises(ProposerError, match=r"gave up after 1 attempt; last error: no complete answer "
                                                r"within 0.5 s"):
            proposer(server, request_timeout_s=0.5, max_retries=0).propose(REQUEST)
        elapsed = time.monotonic() - start
    assert len(json.dumps(body.body)) / 5 * 0.05 > 5  # the server alone would have needed that long
    assert elapsed < 2.5  # ended at the deadline, not when the body was done


def test_slow_reply_times_out_then_retry_succeeds():
    script = [completion(good_reply_json(name="late"), delay_s=1.0), completion(good_reply_json(name="on_time"))]
    events = []
    with FakeOpenAIServer(script) as server:
        reply = proposer(server, request_timeout_s=0.25, on_event=events.append).propose(REQUEST)
    assert json.loads(reply.text)["name"] == "on_time"
    assert len(server.requests) == 2
    assert len(events) == 1 and events[0].startswith("no complete answer within 0.25 s, retrying in ")
    assert events[0].endswith("(attempt 2 of 4)")


def test_always_slow_ends_in_a_timeout_error():
    with FakeOpenAIServer([], default=completion(good_reply_json(), delay_s=0.6)) as server:
        with pytest.raises(ProposerError, match=r"gave up after 2 attempts; last error: no complete answer within "
                                                r"0.2 s"):
            proposer(server, request_timeout_s=0.2, max_retries=1).propose(REQUEST)


def test_the_older_timeout_s_name_still_sets_the_deadline():
    assert OpenAIProposer("m", base_url="http://127.0.0.1:1/v1", timeout_s=7).request_timeout_s == 7
    assert OpenAIProposer("m", base_url="http://127.0.0.1:1/v1").request_timeout_s == 300


@pytest.mark.parametrize("chunked", [False, True], ids=["content_length", "chunked"])
def test_a_huge_reply_is_cut_off_at_the_cap_and_not_retried(chunked):
    huge = completion("x" * (2 * 1024 * 1024), chunked=chunked)
    with FakeOpenAIServer([], default=huge) as server:
        with pytest.raises(ProposerError, match=r"max_reply_bytes") as info:
            proposer(server, max_reply_bytes=64 * 1024).propose(REQUEST)
    assert len(server.requests) == 1
    expected = "passed 65536 bytes" if chunked else "announced a reply of 2097"
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_a_reply_under_the_cap_passes_whole():
    content = good_reply_json(thought="y" * 50_000)
    with FakeOpenAIServer([completion(content, chunked=True)]) as server:
        reply = proposer(server, max_reply_bytes=64 * 1024).propose(REQUEST)
    assert reply.text == content


# --- retries ------------------------------------------------------------------------------------------------------

def test_503_honours_retry_after_seconds():
    events = []
    script = [error(503, "loading", headers={"Retry-After": "1"}), completion(good_reply_json())]
    with FakeOpenAIServer(script) as server:
        start = time.monotonic()
        reply = proposer(server, backoff_s=0.001, on_event=events.append).propose(REQUEST)
        waited = time.monotonic() - start
    assert json.loads(reply.text)["name"] == "scripted_loss" and len(server.requests) == 2
    assert waited >= 0.95  # the server's Retry-After, not the tiny backoff
    assert events == ["HTTP 503, retrying in 1.0 s (attempt 2 of 4)"]


def test_429_honours_retry_after_as_an_http_date():
    when = email.utils.formatdate(time.time() + 1.5, usegmt=True)  # whole seconds: 0.5 to 1.5 s from now
    events = []
    script = [error(429, "slow down", headers={"Retry-After": when}), completion(good_reply_json())]
    with FakeOpenAIServer(script) as server:
        start = time.monotonic()
        proposer(server, backoff_s=0.001, on_event=events.append).propose(REQUEST)
        waited = time.monotonic() - start
    assert len(server.requests) == 2
    assert waited >= 0.4
    [line] = events
    assert line.startswith("HTTP 429, retrying in ") and float(line.split()[4]) >= 0.4


def test_429_for_an_exhausted_quota_is_not_retried():
    quota = Scripted(429, {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                                     "param": None, "code": "insufficient_quota"}})
    with FakeOpenAIServer([quota]) as server:
        with pytest.raises(ProposerError, match="HTTP 429: You exceeded your current quota"):
            proposer(server).propose(REQUEST)
    assert len(server.requests) == 1


def test_retry_after_forms():
    assert retry_after_seconds(httpx.Headers({"Retry-After": "2.5"})) == 2.5
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "1500", "Retry-After": "9"})) == 1.5
    in_ten = retry_after_seconds(httpx.Headers({"Retry-After": email.utils.formatdate(time.time() + 10,
                                                                                      usegmt=True)}))
    assert 8.5 <= in_ten <= 10.5
    assert retry_after_seconds(httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0  # past
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"})) is None
    assert retry_after_seconds(httpx.Headers({})) is None


def test_500_then_success():
    with FakeOpenAIServer([error(500, "boom"), completion(good_reply_json())]) as server:
        reply = proposer(server).propose(REQUEST)
    assert json.loads(reply.text)["code"]
    assert len(server.requests) == 2


def test_5xx_forever_gives_up_with_a_clear_error():
    events = []
    with FakeOpenAIServer([], default=error(500, "boom")) as server:
        with pytest.raises(ProposerError) as info:
            proposer(server, max_retries=3, on_event=events.append).propose(REQUEST)
    assert len(server.requests) == 4
    assert str(info.value) == (f"{server.base_url}/chat/completions: gave up after 4 attempts; last error: "
                               f"HTTP 500: boom")
    assert [e.split(",")[0] for e in events] == ["HTTP 500"] * 3
    assert [e.split("(")[1] for e in events] == ["attempt 2 of 4)", "attempt 3 of 4)", "attempt 4 of 4)"]


def test_connection_refused_is_retried_then_reported():
    with FakeOpenAIServer([]) as server:
        url = server.base_url
    # the server is closed now: nothing listens on that port
    with pytest.raises(ProposerError, match=r"gave up after 3 attempts; last error: connection failed"):
        OpenAIProposer("m", base_url=url, backoff_s=0.01, max_retries=2).propose(REQUEST)


# --- parameters a server rejects ----------------------------------------------------------------------------------

def test_a_rejected_temperature_is_dropped_for_the_rest_of_the_run():
    events = []
    script = [TEMPERATURE_REJECTED, completion(good_reply_json()), completion(good_reply_json(name="again"))]
    with FakeOpenAIServer(script) as server:
        client = proposer(server, on_event=events.append)
        client.propose(REQUEST)
        second = client.propose(REQUEST)
    assert json.loads(second.text)["name"] == "again"
    bodies = [r.body for r in server.requests]
    assert bodies[0]["temperature"] == 0.8
    assert "temperature" not in bodies[1] and "temperature" not in bodies[2]
    assert all(b["response_format"] == {"type": "json_object"} for b in bodies)  # only temperature was dropped
    assert events == ["the server rejected temperature: sending none for the rest of the run"]


def test_400_on_response_format_retries_without_it_and_remembers():
    events = []
    script = [error(400, "response_format is not supported by this model", param="response_format"),
              completion(good_reply_json()), completion(good_reply_json(name="again"))]
    with FakeOpenAIServer(script) as server:
        client = proposer(server, on_event=events.append)
        client.propose(REQUEST)
        second = client.propose(REQUEST)
    assert json.loads(second.text)["name"] == "again"
    bodies = [r.body for r in server.requests]
    assert bodies[0]["response_format"] == {"type": "json_object"}
    assert "response_format" not in bodies[1] and "response_format" not in bodies[2]
    assert all(b["temperature"] == 0.8 for b in bodies)
    assert client.json_mode is False
    assert len(events) == 1 and "response_format" in events[0]


def test_both_rejections_in_turn_then_success():
    json_mode_rejected = error(422, "json_object response format is not supported")  # no param given
    script = [TEMPERATURE_REJECTED, json_mode_rejected, completion(good_reply_json())]
    with FakeOpenAIServer(script) as server:
        reply = proposer(server, max_retries=0).propose(REQUEST)  # drops are not counted as attempts
    assert json.loads(reply.text)["name"] == "scripted_loss"
    last = server.requests[-1].body
    assert "temperature" not in last and "response_format" not in last


def test_a_rejected_seed_is_dropped_too():
    events = []
    script = [error(400, "Unrecognized request argument supplied: seed", param="seed"), completion(good_reply_json())]
    with FakeOpenAIServer(script) as server:
        proposer(server, on_event=events.append).propose(REQUEST)
    assert server.requests[0].body["seed"] == 1234 and "seed" not in server.requests[1].body
    assert server.requests[1].body["temperature"] == 0.8
    assert events == ["the server rejected seed: sending none for the rest of the run"]


def test_max_tokens_switches_to_max_completion_tokens_when_the_server_asks():
    events = []
    script = [MAX_TOKENS_REJECTED, completion(good_reply_json()), completion(good_reply_json())]
    with FakeOpenAIServer(script) as server:
        client = proposer(server, max_tokens=700, on_event=events.append)
        client.propose(REQUEST)
        client.propose(REQUEST)
    bodies = [r.body for r in server.requests]
    assert bodies[0]["max_tokens"] == 700
    assert [b.get("max_completion_tokens") for b in bodies[1:]] == [700, 700]
    assert all("max_tokens" not in b for b in bodies[1:])
    assert len(events) == 1 and "max_completion_tokens" in events[0]


def test_other_400_is_not_retried():
    with FakeOpenAIServer([error(400, "context length exceeded")]) as server:
        with pytest.raises(ProposerError, match="HTTP 400: context length exceeded"):
            proposer(server).propose(REQUEST)
    assert len(server.requests) == 1


def test_401_fails_at_once_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("LLM2_TEST_KEY", "sk-bad")
    with FakeOpenAIServer([error(401, "Incorrect API key provided: sk-bad")]) as server:
        with pytest.raises(ProposerError) as info:
            proposer(server).propose(REQUEST)
    assert len(server.requests) == 1
    assert "HTTP 401 (unauthorised): Incorrect API key provided" in str(info.value)
    assert "$LLM2_TEST_KEY (it is set)" in str(info.value)


def test_non_completion_answer_is_a_clear_error():
    for answer in (Scripted(200, "<html>proxy page</html>"), Scripted(200, {"choices": []})):
        with FakeOpenAIServer([answer]) as server:
            with pytest.raises(ProposerError, match="not a chat completion"):
                proposer(server).propose(REQUEST)


# --- a reply cut off at the token limit ----------------------------------------------------------------------------

def test_length_finish_reason_is_reported_and_the_reply_still_returned():
    events = []
    cut = good_reply_json()[:60]
    with FakeOpenAIServer([completion(cut, completion_tokens=64, finish_reason="length")]) as server:
        reply = proposer(server, max_tokens=64, on_event=events.append).propose(REQUEST)
    assert (reply.text, reply.finish_reason, reply.completion_tokens) == (cut, "length", 64)
    assert events == ["the reply was cut off at the token limit (64 completion tokens)"]


def test_a_cut_off_reply_is_reasked_saying_so():
    cut = good_reply_json()[:60]
    script = [completion(cut, finish_reason="length"), completion(good_reply_json())]
    with FakeOpenAIServer(script) as server:
        outcome = ask(proposer(server))
    assert outcome.parsed.name == "scripted_loss" and outcome.replies[0].finish_reason == "length"
    assert "cut off" in server.requests[1].body["messages"][-1]["content"]


def test_empty_content_of_a_reasoning_model_is_an_empty_reply():
    with FakeOpenAIServer([completion(None, finish_reason="length")]) as server:
        reply = proposer(server).propose(REQUEST)
    assert reply == Reply("", 10, 5, 0.0, "fake-model", "length")


# --- money --------------------------------------------------------------------------------------------------------

def test_tokens_and_cost_accounting():
    script = [completion(good_reply_json(), prompt_tokens=1000, completion_tokens=500),
              completion(good_reply_json(), prompt_tokens=2000, completion_tokens=0)]
    with FakeOpenAIServer(script) as server:
        client = proposer(server, price_prompt_per_1k=0.5, price_completion_per_1k=2.0)
        first, second = client.propose(REQUEST), client.propose(REQUEST)
    assert first.cost_usd == pytest.approx(0.5 + 1.0)
    assert second.cost_usd == pytest.approx(1.0)
    assert client.spent_usd == pytest.approx(2.5)
    assert (client.prompt_tokens, client.completion_tokens, client.largest_completion_tokens) == (3000, 500, 500)


def test_no_prices_means_no_cost():
    with FakeOpenAIServer([completion(good_reply_json(), prompt_tokens=1000)]) as server:
        reply = proposer(server).propose(REQUEST)
    assert reply.cost_usd == 0.0 and reply.prompt_tokens == 1000


def test_a_cap_without_prices_is_refused_at_construction():
    with pytest.raises(ValueError, match="a cap with no prices caps nothing") as info:
        OpenAIProposer("m", max_cost_usd=5.0)
    assert "\n" not in str(info.value)
    OpenAIProposer("m", max_cost_usd=5.0, price_completion_per_1k=0.01)  # one price is enough


def test_the_estimate_of_the_next_request():
    client = OpenAIProposer("m", base_url="http://127.0.0.1:1/v1", price_prompt_per_1k=1.0,
                            price_completion_per_1k=2.0)
    prompt_usd = math.ceil(REQUEST_CHARS / 4) / 1000
    assert client.estimate_request_usd(REQUEST.messages) == pytest.approx(prompt_usd + 1024 * 2.0 / 1000)
    client.largest_completion_tokens = 300  # as after a reply of 300 completion tokens
    assert client.estimate_request_usd(REQUEST.messages) == pytest.approx(prompt_usd + 300 * 2.0 / 1000)
    client.max_tokens = 50  # max_tokens, when set, bounds the completion
    assert client.estimate_request_usd(REQUEST.messages) == pytest.approx(prompt_usd + 50 * 2.0 / 1000)


def test_the_cap_is_checked_against_the_next_requests_estimate():
    # Each request may cost up to 400 completion tokens at $2/1k = $0.80; the first one costs only $0.30, so
    # $0.70 are left, less than the next request may cost: it is refused although the cap is not reached.
    script = [completion(good_reply_json(), prompt_tokens=100, completion_tokens=100)] * 2
    with FakeOpenAIServer(script) as server:
        client = proposer(server, price_prompt_per_1k=1.0, price_completion_per_1k=2.0, max_cost_usd=1.0,
                          max_tokens=400)
        client.propose(REQUEST)
        with pytest.raises(BudgetExceeded, match=r"\$0\.3000 spent and the next request may cost about \$0\.80"):
            client.propose(REQUEST)
    assert len(server.requests) == 1
    assert client.spent_usd == pytest.approx(0.3)
    assert issubclass(BudgetExceeded, ProposerError)


def test_restored_spend_counts_towards_the_cap():
    with FakeOpenAIServer([completion(good_reply_json())]) as server:
        fresh = proposer(server, price_prompt_per_1k=1.0, price_completion_per_1k=1.0, max_cost_usd=1.0,
                         max_tokens=100)
        resumed = proposer(server, price_prompt_per_1k=1.0, price_completion_per_1k=1.0, max_cost_usd=1.0,
                           max_tokens=100, spent_usd=0.95)
        with pytest.raises(BudgetExceeded, match=r"\$0\.9500 spent"):
            resumed.propose(REQUEST)
        assert server.requests == []  # refused before sending anything
        fresh.propose(REQUEST)  # the same request is affordable without the earlier spend
    assert len(server.requests) == 1


# --- check(): fail fast before a run ------------------------------------------------------------------------------

def test_check_passes_when_the_model_is_listed():
    with FakeOpenAIServer([], models=["other-model", "test-model"]) as server:
        proposer(server).check()
    assert [(r.method, r.path) for r in server.listing_requests] == [("GET", "/v1/models")]
    assert server.requests == []  # no chat request needed


def test_check_names_the_served_models_when_the_model_is_wrong():
    not_found = error(404, "The model `test-model` does not exist or you do not have access to it.")
    with FakeOpenAIServer([not_found], models=["gpt-a", "gpt-b"]) as server:
        with pytest.raises(ProposerError) as info:
            proposer(server).check()
    message = str(info.value)
    assert "the model 'test-model' does not answer" in message and "HTTP 404" in message
    assert "the server lists: gpt-a, gpt-b" in message and "\n" not in message
    assert len(server.requests) == 1  # a 404 is not retried


def test_check_without_a_listing_fails_fast_on_a_500_to_chat():
    # `transformers serve` answers an unknown model with a 500 to chat, and has no /models to ask first.
    with FakeOpenAIServer([], default=error(500, "Repository Not Found for url: .../test-model"),
                          models=None) as server:
        start = time.monotonic()
        with pytest.raises(ProposerError) as info:
            proposer(server, backoff_s=0.5, max_retries=5).check()
        elapsed = time.monotonic() - start
    assert len(server.listing_requests) == 1  # answered 404: no listing
    assert len(server.requests) == 2  # one attempt and at most one retry, whatever max_retries says
    assert elapsed < 5  # propose()'s policy would have waited 0.5 + 1 + 2 + 4 + 8 s
    assert "the model 'test-model' does not answer" in str(info.value)
    assert "Repository Not Found" in str(info.value)


def test_check_without_a_listing_accepts_a_model_that_answers():
    script = [MAX_TOKENS_REJECTED, completion("OK", prompt_tokens=9, completion_tokens=1, finish_reason="length")]
    events = []
    with FakeOpenAIServer(script, models=None) as server:
        client = proposer(server, price_prompt_per_1k=1.0, price_completion_per_1k=1.0, on_event=events.append)
        client.check()
    probes = [r.body for r in server.requests]
    assert probes[0]["max_tokens"] == 1 and probes[1]["max_completion_tokens"] == 1
    assert all("temperature" not in p and "response_format" not in p for p in probes)
    assert client.spent_usd == pytest.approx(0.01)  # the probe's tokens are counted
    assert client.max_tokens_parameter == "max_completion_tokens"  # learnt for the run
    assert not any("cut off" in e for e in events)  # a one-token probe is meant to be cut


def test_check_reports_a_bad_key_at_once(monkeypatch):
    monkeypatch.setenv("LLM2_TEST_KEY", "sk-wrong")
    with FakeOpenAIServer([], models=error(401, "Incorrect API key provided: sk-wr***ng")) as server:
        with pytest.raises(ProposerError) as info:
            proposer(server).check()
    message = str(info.value)
    assert message.startswith(f"{server.base_url}/models: HTTP 401 (unauthorised): Incorrect API key provided")
    assert "check the API key in $LLM2_TEST_KEY (it is set)" in message
    assert server.requests == [] and len(server.listing_requests) == 1


def test_check_reports_an_endpoint_that_does_not_answer():
    with FakeOpenAIServer([]) as server:
        url = server.base_url
    with pytest.raises(ProposerError, match=rf"^{url} does not answer: connection failed"):
        OpenAIProposer("m", base_url=url, backoff_s=0.01).check()


class ProposerWithoutCheck:
    name = "without_check"

    def propose(self, request):
        return Reply("{}")


def test_check_before_run_calls_check_only_where_there_is_one():
    check_before_run(ProposerWithoutCheck())  # no check(): taken as ready
    with FakeOpenAIServer([], models=["someone-else"], default=error(404, "no such model")) as server:
        with pytest.raises(ProposerError, match="no such model"):
            check_before_run(proposer(server))


# --- construction -------------------------------------------------------------------------------------------------

def test_registry_builds_the_openai_proposer():
    built = make_proposer("openai", model="m", base_url="http://127.0.0.1:1/v1/")
    assert isinstance(built, OpenAIProposer) and built.url == "http://127.0.0.1:1/v1/chat/completions"
    assert built.on_event is None and built.name == "openai"
    with pytest.raises(KeyError, match=r"unknown proposer 'nope'; known proposers: .*openai"):
        make_proposer("nope")


@pytest.mark.parametrize("options, fragment", [
    ({"model": ""}, "needs a model name"),
    ({"request_timeout_s": 0}, "request_timeout_s must be positive"),
    ({"max_tokens": 0}, "max_tokens must be at least 1"),
    ({"max_reply_bytes": 0}, "max_reply_bytes must be positive"),
    ({"spent_usd": -1.0}, "spent_usd must be 0 or more"),
    ({"price_prompt_per_1k": -0.1}, "price_prompt_per_1k must be 0 or more"),
])
def test_bad_options_are_one_line_errors(options, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        OpenAIProposer(**{"model": "m", **options})
    assert "\n" not in str(info.value)
