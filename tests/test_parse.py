"""Reply parsing (with its safe repairs) and the bounded re-ask."""

import json

import pytest

from llm2.discovery.ask import ask_for_candidate
from llm2.discovery.prompts import PromptBook
from llm2.discovery.parse import ReplyError, parse_reply, snake_case
from llm2.proposers.base import Message, ProposalRequest, ProposerError, Reply
from llm2.proposers.replay import ReplayProposer

CODE = "def loss(a, b, c, d, beta):\n    return -F.logsigmoid(beta * (a - c - b + d))\n"
GOOD = json.dumps({"thought": "Try the logistic loss.", "name": "plain_logistic", "code": CODE})


def test_clean_json_needs_no_repair():
    parsed = parse_reply(GOOD)
    assert (parsed.thought, parsed.name, parsed.code, parsed.repairs) == (
        "Try the logistic loss.", "plain_logistic", CODE, ())


def test_prose_wrapped_json_is_extracted():
    parsed = parse_reply(f"Sure! Here is my proposal: {GOOD}\nI hope {{this}} helps.")
    assert parsed.name == "plain_logistic" and parsed.code == CODE
    assert parsed.repairs == ("prose_wrapped",)


def test_json_fence_with_prose():
    parsed = parse_reply(f"My idea:\n```json\n{GOOD}\n```\n")
    assert parsed.code == CODE
    assert parsed.repairs == ("json_fence", "prose_wrapped")


def test_bare_json_fence():
    assert parse_reply(f"```json\n{GOOD}\n```").repairs == ("json_fence",)


def test_outermost_object_wins_over_inner_braces():
    reply = json.dumps({"thought": "uses {x}", "name": "n", "code": CODE, "extra": {"nested": {"a": 1}}})
    parsed = parse_reply("prefix " + reply)
    assert parsed.thought == "uses {x}" and parsed.code == CODE


def test_code_wrapped_in_fences_inside_the_value():
    reply = json.dumps({"thought": "t", "name": "n", "code": f"```python\n{CODE}```"})
    parsed = parse_reply(reply)
    assert parsed.code == CODE
    assert parsed.repairs == ("code_fence",)


def test_trailing_commas_are_dropped_outside_strings():
    reply = GOOD[:-1] + ",\n}"
    reply = reply.replace('"thought": "Try the logistic loss."', '"thought": "keep this ,}"')
    parsed = parse_reply(reply)
    assert parsed.thought == "keep this ,}"
    assert parsed.repairs == ("trailing_comma",)


def test_raw_newlines_inside_strings():
    reply = '{"thought": "t", "name": "n", "code": "' + CODE.replace('"', '\\"') + '"}'
    assert "\n" in reply  # the model did not escape its newlines
    parsed = parse_reply(reply)
    assert parsed.code == CODE and parsed.repairs == ("raw_control_chars",)


def test_python_literal_dict_with_single_quotes():
    reply = repr({"thought": "it's fine", "name": "py_dict", "code": CODE})
    parsed = parse_reply(reply)
    assert parsed.thought == "it's fine" and parsed.code == CODE
    assert parsed.repairs == ("python_literal",)


def test_doubly_escaped_newlines():
    reply = json.dumps({"thought": "t", "name": "n", "code": CODE.replace("\n", "\\n")})
    parsed = parse_reply(reply)
    assert parsed.code == CODE and parsed.repairs == ("escaped_newlines",)


@pytest.mark.parametrize("raw, expected", [
    ("My Cool-Loss v2", "my_cool_loss_v2"),
    ("HingeLossV2", "hinge_loss_v2"),
    ("  __dpo__ ", "dpo"),
    ("2nd try", "loss_2nd_try"),
    ("x" * 100, "x" * 64),
])
def test_snake_case(raw, expected):
    assert snake_case(raw) == expected


def test_name_is_sanitised_and_recorded():
    parsed = parse_reply(json.dumps({"thought": "t", "name": "Gated Hinge!", "code": CODE}))
    assert parsed.name == "gated_hinge" and parsed.repairs == ("name_sanitised",)


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("I think we should use a hinge loss.", "contains no JSON object"),
    ('{"thought": "t", "name": "n"}', "lacks the key 'code'"),
    ('{"code": "x"}', "lacks the keys 'thought', 'name'"),
    (json.dumps({"thought": "t", "name": "n", "code": "   "}), "'code' is empty"),
    (json.dumps({"thought": "t", "name": 3, "code": CODE}), "'name' must be a string, not a number"),
    (json.dumps({"thought": ["a"], "name": "n", "code": CODE}), "'thought' must be a string, not an array"),
    (json.dumps({"thought": "t", "name": "!!!", "code": CODE}), "no letters or digits"),
    ('{"thought": "t", "name": "n", "code": "def f():', "not closed"),
    ('{"thought": "t" "name": "n"}', "could not be decoded (Expecting ',' delimiter"),
    ("[1, 2]", "contains no JSON object"),
])
def test_unusable_replies_say_what_to_fix(text, fragment):
    with pytest.raises(ReplyError) as info:
        parse_reply(text)
    assert fragment in str(info.value)


def test_prefers_the_object_with_all_keys():
    text = 'Format: {"thought": "...", "name": "..."}. Answer: ' + GOOD
    assert parse_reply(text).name == "plain_logistic"


# --- the bounded re-ask, driven by a real ReplayProposer over a JSONL file ---------------------------------------

def _replay(tmp_path, texts):
    path = tmp_path / "replies.jsonl"
    path.write_text("".join(json.dumps({"text": t, "prompt_tokens": 3, "completion_tokens": 2}) + "\n"
                            for t in texts))
    return ReplayProposer(path)


REQUEST = ProposalRequest((Message("system", "s"), Message("user", "propose")), (), 0.7, 11)
BOOK = PromptBook()


class Recorder:
    """The loop's ``record`` callback, keeping what it is given (the archive keeps it the same way)."""

    def __init__(self):
        self.calls = []

    def __call__(self, attempt, payload, reply, error):
        self.calls.append((attempt, payload, None if reply is None else reply.text, error))
        return 100 + len(self.calls)


def ask(proposer, request=REQUEST, **options):
    options.setdefault("record", Recorder())
    return ask_for_candidate(proposer, request, reask=lambda reason: BOOK.render("reask", reason=reason), **options)


def test_good_reply_needs_no_reask(tmp_path):
    outcome = ask(_replay(tmp_path, [f"```json\n{GOOD}\n```"]))
    assert outcome.parsed.name == "plain_logistic" and outcome.error is None
    assert len(outcome.replies) == 1 and outcome.exchanges == ()
    assert outcome.events == ("repair:json_fence",)


def test_missing_key_is_reasked_then_accepted(tmp_path):
    bad = '{"thought": "t", "name": "n"}'
    proposer = _replay(tmp_path, [bad, GOOD])
    record = Recorder()
    outcome = ask(proposer, record=record)
    assert outcome.parsed.name == "plain_logistic" and outcome.error is None
    assert [r.text for r in outcome.replies] == [bad, GOOD]
    assert [m.role for m in outcome.exchanges] == ["assistant", "user"]
    assert outcome.exchanges[0].content == bad
    assert outcome.exchanges[1].content.startswith("Your reply could not be used: the JSON object lacks the key 'code'")
    assert outcome.exchanges[1].content.endswith('Reply again with only a JSON object with keys "thought", "name" and "code".')
    assert len(outcome.events) == 1 and outcome.events[0].startswith("reask:the JSON object lacks the key 'code'")
    # each reply was recorded as it came, with the exact request it answered
    assert [(c[0], c[2]) for c in record.calls] == [(0, bad), (1, GOOD)] and outcome.request_ids == (101, 102)
    assert len(record.calls[1][1]["messages"]) == 4 and record.calls[0][1]["seed"] == 11


def test_reask_is_bounded(tmp_path):
    proposer = _replay(tmp_path, ["no json", "still none", "nope", GOOD])
    outcome = ask(proposer, max_reasks=2)
    assert outcome.parsed is None
    assert outcome.error.startswith("no usable reply after 3 attempts: the reply contains no JSON object")
    assert len(outcome.replies) == 3 and len(outcome.exchanges) == 4
    assert [e.split(":")[0] for e in outcome.events] == ["reask", "reask", "unusable"]
    assert proposer.remaining == 1  # the fourth reply was never asked for


def test_reask_sends_the_growing_conversation(tmp_path):
    seen = []

    class Recording:
        name = "recording"

        def __init__(self, inner):
            self.inner = inner

        def propose(self, request):
            seen.append(request)
            return self.inner.propose(request)

    ask(Recording(_replay(tmp_path, ["x", "y", GOOD])))
    assert [len(r.messages) for r in seen] == [2, 4, 6]
    assert seen[2].messages[:2] == REQUEST.messages and seen[2].messages[-1].role == "user"
    assert {(r.seed, r.temperature) for r in seen} == {(11, 0.7)}


def test_proposer_errors_propagate_after_the_replies_so_far_are_recorded(tmp_path):
    record = Recorder()
    with pytest.raises(ProposerError, match="replay exhausted after 1 replies"):
        ask(_replay(tmp_path, ["bad"]), record=record)
    assert [(c[0], c[2], c[3]) for c in record.calls] == [(0, "bad", None), (1, None,
                                                                          "replay exhausted after 1 replies"
                                                                          f" (from {tmp_path / 'replies.jsonl'})")]


def test_replies_of_an_earlier_session_are_used_before_asking_again(tmp_path):
    proposer = _replay(tmp_path, [GOOD])
    record = Recorder()
    outcome = ask(proposer, record=record, earlier=[(7, Reply("no json"))])
    assert outcome.parsed.name == "plain_logistic" and outcome.request_ids == (7, 101)
    assert [c[0] for c in record.calls] == [1] and outcome.events[0] == "reused:1"


def test_a_reply_cut_off_at_the_token_limit_says_so(tmp_path):
    class CutOff:
        name = "cut"

        def propose(self, request):
            return Reply('{"thought": "long', finish_reason="length")

    outcome = ask(CutOff(), max_reasks=0)
    assert outcome.parsed is None and "cut off at the token limit" in outcome.error
