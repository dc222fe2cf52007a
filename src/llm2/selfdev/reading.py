"""A factory's completion as a candidate: a reply in the discovery's JSON form when it is one (a chat model asked
with the discovery's prompt), else the completion is the code itself (the offline factory writes bare code)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from llm2.discovery.parse import ReplyError, parse_reply, snake_case, strip_thinking

_FENCED = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n(.*?)```", re.DOTALL)
_FIRST_DEF = re.compile(r"^\s*def\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(", re.MULTILINE)


@dataclass(frozen=True)
class ReadCompletion:
    thought: str
    name: str  # a short snake_case name ("" when the completion held no code)
    code: str  # "" when there is nothing to evaluate
    error: str | None = None  # why there is no code


def read_completion(text: str) -> ReadCompletion:
    if "{" in text:
        try:
            parsed = parse_reply(text)
            return ReadCompletion(parsed.thought, parsed.name, parsed.code)
        except ReplyError:
            pass  # not a JSON reply: the code may still be there as such
    body, _ = strip_thinking(text)
    fenced = _FENCED.search(body)
    code = (fenced.group(1) if fenced else body).strip("\n").rstrip()
    defined = _FIRST_DEF.search(code)
    if not code.strip() or defined is None:
        return ReadCompletion("", "", "", "the completion holds no function definition")
    return ReadCompletion("", snake_case(defined.group(1)) or "algorithm", code + "\n")
