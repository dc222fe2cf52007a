"""Turn a proposer's reply text into (thought, name, code), repairing what is safe to repair.

The reply should be one JSON object with string keys ``thought``, ``name`` and ``code``. Reasoning models put
their thinking in ``<think>...</think>`` first (drafts included: it is removed before anything is looked for).
Models often wrap the object in prose or code fences, leave trailing commas, put raw newlines inside strings or
answer with a Python dict; those are repaired and each repair is recorded by a short tag. Anything else raises
``ReplyError`` whose message tells the proposer exactly what to fix.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass

REQUIRED_KEYS = ("thought", "name", "code")
MAX_NAME_LENGTH = 64

# Repair tags, recorded on the ParsedReply and reported by the loop as events.
PROSE_WRAPPED = "prose_wrapped"
JSON_FENCE = "json_fence"
RAW_CONTROL_CHARS = "raw_control_chars"
TRAILING_COMMA = "trailing_comma"
PYTHON_LITERAL = "python_literal"
CODE_FENCE = "code_fence"
ESCAPED_NEWLINES = "escaped_newlines"
NAME_SANITISED = "name_sanitised"
THINK_STRIPPED = "think_stripped"

_JSON_TYPE_NAMES = {dict: "an object", list: "an array", bool: "a boolean", int: "a number", float: "a number",
                    type(None): "null"}
_FENCED_BLOCK = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)```", re.DOTALL)
_THINK_BLOCK = re.compile(r"<(think|thinking)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_LEADING_THINK_OPEN = re.compile(r"\s*<(think|thinking)>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(think|thinking)>", re.IGNORECASE)


class ReplyError(ValueError):
    """The reply cannot be used; the message says what the proposer must change."""


@dataclass(frozen=True)
class ParsedReply:
    thought: str
    name: str
    code: str
    repairs: tuple[str, ...] = ()


def parse_reply(text: str) -> ParsedReply:
    """Parse a reply into a ParsedReply or raise ReplyError with an actionable reason."""
    if not text or not text.strip():
        raise ReplyError("the reply was empty; reply with a single JSON object with keys thought, name, code")
    text, think_repairs = strip_thinking(text)
    if not text.strip():
        raise ReplyError("the reply held only thinking (<think>...), no answer; after thinking, reply with a "
                         "single JSON object with keys thought, name, code")
    obj, repairs = _extract_object(text)
    repairs = think_repairs + repairs
    for key in REQUIRED_KEYS:
        if key not in obj:
            missing = [k for k in REQUIRED_KEYS if k not in obj]
            raise ReplyError(
                f"the JSON object lacks the key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
                f" (it has {', '.join(map(repr, obj)) or 'no keys'}); it must have the keys thought, name, code")
    for key in REQUIRED_KEYS:
        value = obj[key]
        if not isinstance(value, str):
            kind = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
            raise ReplyError(f"the value of {key!r} must be a string, not {kind}")
    code, code_repairs = _clean_code(obj["code"])
    if not code.strip():
        raise ReplyError("the value of 'code' is empty; put the complete Python source of the function in it")
    name = snake_case(obj["name"])
    if not name:
        raise ReplyError(f"the name {obj['name']!r} has no letters or digits; give a short snake_case name")
    if name != obj["name"]:
        code_repairs.append(NAME_SANITISED)
    return ParsedReply(obj["thought"].strip(), name, code, tuple(repairs + code_repairs))


def strip_thinking(text: str) -> tuple[str, list[str]]:
    """Remove ``<think>...</think>`` blocks, so that a draft inside the thinking is never taken for the answer.

    Also removed: an unclosed leading ``<think>`` and all after it (the reply was cut off while thinking), and
    everything before a ``</think>`` that has no opening tag (chat templates that open the thinking in the prompt).
    """
    stripped = _THINK_BLOCK.sub("", text)
    if _LEADING_THINK_OPEN.match(stripped):
        stripped = ""
    closing = _THINK_CLOSE.search(stripped)
    if closing:
        stripped = stripped[closing.end():]
    return (stripped, [THINK_STRIPPED]) if stripped != text else (text, [])


def snake_case(name: str) -> str:
    """'My Cool-Loss v2' -> 'my_cool_loss_v2'; a leading digit gets a 'loss_' prefix."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    snake = re.sub(r"[^0-9A-Za-z]+", "_", spaced).strip("_").lower()
    if snake[:1].isdigit():
        snake = "loss_" + snake
    return snake[:MAX_NAME_LENGTH].rstrip("_")


def _extract_object(text: str) -> tuple[dict, list[str]]:
    """The first decodable top-level ``{...}`` of the text (preferring one with all keys) and the repairs made."""
    spans = list(_outermost_objects(text))
    if not spans:
        raise ReplyError("the reply contains no JSON object; reply with a single JSON object with keys "
                         "thought, name, code")
    decoded: list[tuple[dict, list[str], int, int]] = []
    first_error = ""
    for start, end in spans:
        if end is None:
            first_error = first_error or ("the JSON object is not closed (a '}' is missing; was the reply cut off?)")
            continue
        try:
            obj, repairs = _decode(text[start:end])
        except ValueError as exc:
            first_error = first_error or str(exc)
            continue
        if isinstance(obj, dict):
            decoded.append((obj, repairs, start, end))
    if not decoded:
        raise ReplyError(first_error or "the reply contains no JSON object with keys thought, name, code")
    complete = [d for d in decoded if all(k in d[0] for k in REQUIRED_KEYS)]
    obj, repairs, start, end = (complete or decoded)[0]
    return obj, _wrapping_repairs(text, start, end) + repairs


def _outermost_objects(text: str):
    """Yield (start, end) of each top-level brace-balanced span; end is None when the span never closes.

    Quotes (both kinds, for Python-literal replies) are tracked so that braces inside strings do not count.
    """
    i = 0
    while True:
        start = text.find("{", i)
        if start < 0:
            return
        depth, quote, escaped = 0, None, False
        for j in range(start, len(text)):
            ch = text[j]
            if quote:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == quote:
                    quote = None
            elif ch in "\"'":
                quote = ch
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    yield start, j + 1
                    i = j + 1
                    break
        else:
            yield start, None
            return


def _decode(candidate: str) -> tuple[object, list[str]]:
    """Decode one ``{...}`` span, trying the safe repairs in order; ValueError with a clear reason otherwise."""
    try:
        return json.loads(candidate), []
    except json.JSONDecodeError as exc:
        first = exc
    try:
        return json.loads(candidate, strict=False), [RAW_CONTROL_CHARS]
    except json.JSONDecodeError:
        pass
    without_commas = _drop_trailing_commas(candidate)
    if without_commas != candidate:
        try:
            return json.loads(without_commas, strict=False), [TRAILING_COMMA]
        except json.JSONDecodeError:
            pass
    try:
        value = ast.literal_eval(candidate)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        pass
    else:
        return value, [PYTHON_LITERAL]
    raise ValueError(f"the JSON object could not be decoded ({first.msg} at line {first.lineno} column "
                     f"{first.colno}); use double quotes and escape newlines and quotes inside the strings")


def _drop_trailing_commas(candidate: str) -> str:
    """Remove commas directly before a closing brace or bracket, outside strings."""
    out: list[str] = []
    in_string, escaped = False, False
    for ch in candidate:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "}]":
            while out and out[-1].isspace():
                out.pop()
            if out and out[-1] == ",":
                out.pop()
        out.append(ch)
    return "".join(out)


def _wrapping_repairs(text: str, start: int, end: int) -> list[str]:
    before, after = text[:start], text[end:]
    repairs = []
    fenced = "```" in before
    if fenced:
        repairs.append(JSON_FENCE)
    outside = re.sub(r"```[A-Za-z0-9_+-]*", "", before + after)
    if outside.strip():
        repairs.append(PROSE_WRAPPED)
    return repairs


def _clean_code(code: str) -> tuple[str, list[str]]:
    repairs = []
    if "```" in code:
        block = _FENCED_BLOCK.search(code)
        if block:
            code = block.group(1)
            repairs.append(CODE_FENCE)
    if "\n" not in code and "\\n" in code:
        # A doubly-escaped string: the model escaped its newlines twice.
        code = code.replace("\\n", "\n").replace("\\t", "    ")
        repairs.append(ESCAPED_NEWLINES)
    return code.strip("\n").rstrip() + "\n", repairs
