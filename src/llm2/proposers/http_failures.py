"""How a failed exchange with an OpenAI-compatible server is judged: retry or not, after how long, and the one
line that says why (the server's own message when it sent one)."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

import httpx
import openai

from llm2.proposers.base import ProposerError
from llm2.proposers.http_transport import ReplyTooLarge


@dataclass(frozen=True)
class Failure:
    brief: str  # a few words for the progress line: "HTTP 503", "connection failed"
    message: str  # the full one-line reason: "HTTP 503: <the server's message>"
    retryable: bool
    retry_after: float | None = None  # the server's wish, in seconds
    status: int | None = None  # the HTTP status, when the server answered
    detail: str = ""  # the server's own message, when it answered


class RequestFailed(ProposerError):
    """An exchange failed for good; ``failure`` says how (check() tells a missing listing from a dead server)."""

    def __init__(self, message: str, failure: Failure):
        super().__init__(message)
        self.failure = failure


def judge(exc: Exception, timeout_s: float) -> Failure:
    too_large = _cause_of_type(exc, ReplyTooLarge)
    if too_large is not None:
        return Failure("reply too large", str(too_large), retryable=False)
    if isinstance(exc, openai.APITimeoutError):
        brief = f"no complete answer within {timeout_s:g} s"
        return Failure(brief, brief, retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return Failure("connection failed", f"connection failed: {_root_cause_text(exc)}", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status, detail = exc.status_code, server_message(exc)
        quota_spent = status == 429 and exc.code == "insufficient_quota"  # waiting does not refill an account
        retryable = (status in (408, 429) or status >= 500) and not quota_spent
        retry_after = retry_after_seconds(exc.response.headers) if status in (429, 503) else None
        return Failure(f"HTTP {status}", f"HTTP {status}: {detail}", retryable, retry_after, status, detail)
    return Failure("unexpected answer", f"unexpected answer: {_one_line(str(exc))}", retryable=False)


def _cause_of_type(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, kind):
            return current
        current, seen = current.__cause__ or current.__context__, seen + 1
    return None


def _root_cause_text(exc: BaseException) -> str:
    current = exc
    for _ in range(10):
        if current.__cause__ is None:
            break
        current = current.__cause__
    return str(current) or type(current).__name__


def server_message(exc: openai.APIStatusError) -> str:
    """The human part of an error answer: OpenAI's ``error.message``, vLLM's ``message``, FastAPI's ``detail``."""
    body = exc.body
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            value = body.get(key)
            if isinstance(value, dict) and value.get("message"):
                value = value["message"]
            if value:
                return _one_line(str(value))
    if isinstance(body, str) and body.strip():
        return _one_line(body)
    return f"(no message; reason {exc.response.reason_phrase or 'unknown'})"


def _one_line(text: str, limit: int = 500) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """The server's Retry-After (or OpenAI's retry-after-ms) in seconds; HTTP dates are read too."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000.0)
        except ValueError:
            pass
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())
