"""The replay proposer: recorded replies back in order, from a JSONL file."""

import json

import pytest

from llm2.discovery.parse import parse_reply
from llm2.proposers import make_proposer
from llm2.proposers.base import Message, ProposalRequest, ProposerError, Reply
from llm2.proposers.replay import ReplayProposer

REQUEST = ProposalRequest((Message("user", "go"),), (), 1.0, 0)
CODE = "def loss(a, b, c, d, beta):\n    return -F.logsigmoid(beta * (a - c - b + d))\n"


def write(tmp_path, lines):
    path = tmp_path / "replay.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replies_come_back_in_order_then_exhaust(tmp_path):
    raw = {"thought": "t", "name": "raw_one", "code": CODE}
    path = write(tmp_path, [
        json.dumps({"text": "first", "prompt_tokens": 7, "completion_tokens": 3, "cost_usd": 0.01, "model": "gpt"}),
        "",
        json.dumps(raw),
    ])
    proposer = make_proposer("replay", path=str(path))
    assert proposer.propose(REQUEST) == Reply("first", 7, 3, 0.01, "gpt")
    second = proposer.propose(REQUEST)
    assert parse_reply(second.text).name == "raw_one" and parse_reply(second.text).code == CODE
    assert second.prompt_tokens == 0
    with pytest.raises(ProposerError, match="replay exhausted after 2 replies"):
        proposer.propose(REQUEST)


@pytest.mark.parametrize("line, fragment", [
    ("not json", ":1: not a JSON line"),
    ("[1, 2]", "each line must be a JSON object"),
    ('{"text": 3}', "'text' must be a string"),
    ('{"text": "a", "prompt_tokens": "many"}', "bad token or cost field"),
    ('{"thought": "t"}', "expected a reply record with 'text'"),
])
def test_bad_files_fail_with_the_line_number(tmp_path, line, fragment):
    path = write(tmp_path, [line])
    with pytest.raises(ProposerError) as info:
        ReplayProposer(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ProposerError, match="cannot read the replay file"):
        ReplayProposer(tmp_path / "absent.jsonl")
