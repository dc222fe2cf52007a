"""Replay recorded replies from a JSONL file, in order, to re-run a recorded discovery without a model.

Each line is either a reply record ``{"text": ..., "prompt_tokens": ..., "completion_tokens": ..., "cost_usd":
..., "model": ...}`` (only ``text`` is required) or a raw reply object ``{"thought": ..., "name": ..., "code":
...}``, which is serialised to the JSON text a model would have sent. Blank lines are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

from llm2.files import JsonLineError, json_lines
from llm2.proposers.base import ProposalRequest, ProposerError, Reply

_REPLY_FIELDS = {"prompt_tokens": int, "completion_tokens": int, "cost_usd": float, "model": str}


class ReplayProposer:
    name = "replay"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._replies = _read_replies(self.path)
        self._next = 0

    def propose(self, request: ProposalRequest) -> Reply:
        if self._next >= len(self._replies):
            raise ProposerError(f"replay exhausted after {len(self._replies)} replies (from {self.path})")
        reply = self._replies[self._next]
        self._next += 1
        return reply

    @property
    def remaining(self) -> int:
        return len(self._replies) - self._next


def _read_replies(path: Path) -> list[Reply]:
    replies = []
    try:
        for number, record in json_lines(path):
            replies.append(_to_reply(record, f"{path}:{number}"))
    except OSError as exc:
        raise ProposerError(f"cannot read the replay file {path}: {exc.strerror or exc}") from None
    except JsonLineError as exc:
        raise ProposerError(str(exc)) from None  # "FILE:LINE: not a JSON line (why)"
    return replies


def _to_reply(record: object, where: str) -> Reply:
    if not isinstance(record, dict):
        raise ProposerError(f"{where}: each line must be a JSON object, not {type(record).__name__}")
    if "text" in record:
        if not isinstance(record["text"], str):
            raise ProposerError(f"{where}: 'text' must be a string")
        try:
            extra = {k: kind(record[k]) for k, kind in _REPLY_FIELDS.items() if record.get(k) is not None}
        except (TypeError, ValueError) as exc:
            raise ProposerError(f"{where}: bad token or cost field ({exc})") from None
        return Reply(record["text"], **extra)
    if {"thought", "name", "code"} <= record.keys():
        raw = {k: record[k] for k in ("thought", "name", "code")}
        return Reply(json.dumps(raw))
    raise ProposerError(f"{where}: expected a reply record with 'text' or a reply object with "
                        f"'thought', 'name', 'code'; got keys {sorted(record)}")
