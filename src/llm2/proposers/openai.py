"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp server), over the standard library's HTTP.

Transient failures (timeouts, dropped connections, 429, 5xx) are retried with exponential backoff and seeded
jitter; other 4xx answers fail at once with the server's own message. Tokens come from ``usage``; cost is counted
when prices are given, and ``max_cost_usd`` stops the run (BudgetExceeded) before a request once it is spent.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import random
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from llm2.proposers.base import BudgetExceeded, ProposalRequest, ProposerError, Reply

MAX_RETRY_AFTER_S = 120.0  # never sleep longer than this on a server's Retry-After


@dataclass(frozen=True)
class _Answer:
    status: int
    body: str
    retry_after: float | None = None


class _Transient(Exception):
    """A failure worth retrying; ``wait`` is the server's Retry-After, when it gave one."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


class OpenAIProposer:
    name = "openai"

    def __init__(self, model: str, base_url: str = "https://api.openai.com/v1", api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 60, max_retries: int = 5, backoff_s: float = 1.0, json_mode: bool = True,
                 price_prompt_per_1k: float | None = None, price_completion_per_1k: float | None = None,
                 max_cost_usd: float | None = None, max_tokens: int | None = None):
        if not model:
            raise ValueError("the openai proposer needs a model name (--model)")
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.json_mode = json_mode  # turned off for good once the server rejects response_format
        self.price_prompt_per_1k = price_prompt_per_1k
        self.price_completion_per_1k = price_completion_per_1k
        self.max_cost_usd = max_cost_usd
        self.max_tokens = max_tokens
        self.spent_usd = 0.0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def propose(self, request: ProposalRequest) -> Reply:
        if self.max_cost_usd is not None and self.spent_usd >= self.max_cost_usd:
            raise BudgetExceeded(f"spending cap reached: ${self.spent_usd:.4f} spent of the ${self.max_cost_usd:.4f} "
                                 f"allowed (max_cost_usd)")
        jitter = random.Random(request.seed)
        attempts = 0
        while True:
            attempts += 1
            body = self._body(request)
            try:
                answer = self._post(body)
            except _Transient as exc:
                if attempts > self.max_retries:
                    raise ProposerError(f"{self.url}: gave up after {attempts} attempts; last error: {exc}") from None
                time.sleep(self._delay(attempts, exc.wait, jitter))
                continue
            if answer.status == 200:
                return self._reply(answer.body)
            message = _server_message(answer.body)
            if answer.status == 400 and "response_format" in body and _mentions_response_format(answer.body):
                # The server has no JSON mode: ask again without it, now and for the rest of the run.
                self.json_mode = False
                attempts -= 1
                continue
            if answer.status == 401:
                key_note = f"check the API key in ${self.api_key_env}"
                raise ProposerError(f"{self.url}: HTTP 401 (unauthorised): {message}; {key_note}")
            raise ProposerError(f"{self.url}: HTTP {answer.status}: {message}")

    def _body(self, request: ProposalRequest) -> dict:
        body: dict = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "seed": request.seed,
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def _post(self, body: dict) -> _Answer:
        """One HTTP exchange; raises _Transient for what a retry may fix, returns any other answer."""
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "llm2"}
        api_key = os.environ.get(self.api_key_env)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        http_request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers,
                                              method="POST")
        try:
            with urllib.request.urlopen(http_request, timeout=self.timeout_s) as response:
                return _Answer(response.status, response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            text = _read_error_body(exc)
            if exc.code == 429 or exc.code >= 500:
                wait = _retry_after_seconds(exc.headers.get("Retry-After")) if exc.code == 429 else None
                raise _Transient(f"HTTP {exc.code}: {_server_message(text)}", wait) from None
            return _Answer(exc.code, text)
        except (TimeoutError, socket.timeout):
            raise _Transient(f"no answer within {self.timeout_s:g} s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise _Transient(f"no answer within {self.timeout_s:g} s") from None
            raise _Transient(f"connection failed: {exc.reason}") from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise _Transient(f"connection failed: {type(exc).__name__}: {exc}") from None

    def _delay(self, attempt: int, retry_after: float | None, jitter: random.Random) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_S)
        return self.backoff_s * (2 ** (attempt - 1)) + jitter.uniform(0, self.backoff_s)

    def _reply(self, text: str) -> Reply:
        try:
            payload = json.loads(text)
            content = payload["choices"][0]["message"].get("content") or ""
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
            raise ProposerError(f"{self.url}: the answer is not a chat completion: {text[:300]!r}") from None
        usage = payload.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        cost = 0.0
        if self.price_prompt_per_1k is not None or self.price_completion_per_1k is not None:
            cost = (prompt_tokens * (self.price_prompt_per_1k or 0.0)
                    + completion_tokens * (self.price_completion_per_1k or 0.0)) / 1000.0
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.spent_usd += cost
        return Reply(content, prompt_tokens, completion_tokens, cost, str(payload.get("model") or self.model))


def _read_error_body(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        exc.close()


def _server_message(text: str) -> str:
    """The human part of an error body: OpenAI's ``{"error": {"message": ...}}`` or the raw text, shortened."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()[:500] or "(empty body)"
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    if isinstance(payload, dict) and payload.get("message"):
        return str(payload["message"])
    return text.strip()[:500]


def _mentions_response_format(text: str) -> bool:
    lowered = text.lower()
    return "response_format" in lowered or "json_object" in lowered or "response format" in lowered


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
