"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp, ``transformers serve``), through the
``openai`` package.

The package's own retries are off: llm2 retries by its own policy (Retry-After on 429/503, seeded exponential
backoff on timeouts, dropped connections and 5xx, a bounded number of attempts; other 4xx fail at once with the
server's message). Each HTTP exchange has one overall deadline and a cap on the reply's size, enforced by the
transport under the openai client. Parameters a server rejects (temperature, JSON mode, ``max_tokens``) are
dropped or renamed for the rest of the run. Cost is counted from ``usage`` and prices; ``max_cost_usd`` refuses a
request whose estimated cost would pass the cap.
"""

from __future__ import annotations

import base64
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import openai

from llm2.proposers.base import (BudgetExceeded, ContextTooLong, Image, Message, ProposalRequest, ProposerError,
                                 Reply, context_error)
# retry_after_seconds is imported from here by tests
from llm2.proposers.http_failures import (Failure, RequestFailed, judge, retry_after_seconds,  # noqa: F401
                                          server_message)
from llm2.proposers.http_transport import BoundedTransport

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_REQUEST_TIMEOUT_S = 300.0  # a reasoning model may think for minutes before a non-streamed reply
DEFAULT_MAX_REPLY_BYTES = 4 * 1024 * 1024  # a proposal is a few KiB; megabytes mean a broken server
MAX_RETRY_AFTER_S = 60.0  # never sleep longer than this on a server's Retry-After
MAX_BACKOFF_S = 60.0
CHARS_PER_TOKEN = 4  # the usual rough ratio, for the cost estimate made before a request
COMPLETION_TOKENS_GUESS = 1024  # the completion estimate before any reply was seen and without max_tokens
CHECK_ATTEMPTS = 2  # check() tries once and retries at most once: it must fail fast
NO_KEY = "no-key"  # given to the openai client when the key's variable is unset; never sent (see _make_client)


class OpenAIProposer:
    name = "openai"

    def __init__(self, model: str, base_url: str = DEFAULT_BASE_URL, api_key_env: str = "OPENAI_API_KEY",
                 request_timeout_s: float | None = None, max_retries: int = 5, backoff_s: float = 1.0,
                 json_mode: bool = True, price_prompt_per_1k: float | None = None,
                 price_completion_per_1k: float | None = None, max_cost_usd: float | None = None,
                 spent_usd: float = 0.0, max_tokens: int | None = None,
                 max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES, on_event: Callable[[str], None] | None = None,
                 timeout_s: float | None = None, images: bool = False, image_tokens: int | None = None,
                 context_tokens: int | None = None):
        """``timeout_s`` is the older name of ``request_timeout_s``; ``spent_usd`` is what earlier sessions of
        the run already spent, so that a resumed run keeps to the same cap. ``images``: the model reads images, so
        a request's pictures (``ProposalRequest.images``) go with its last user message as image parts;
        ``image_tokens``: the prompt tokens the server counts for one picture, where it differs from llm2's estimate
        from the pixel size (``discovery.curve_images.image_tokens``); ``context_tokens``: the model's context as the
        user knows it, taken before the run's ``--context-tokens`` and the server's report."""
        if not model:
            raise ValueError("the openai proposer needs a model name (--model)")
        timeout = request_timeout_s if request_timeout_s is not None else timeout_s
        timeout = DEFAULT_REQUEST_TIMEOUT_S if timeout is None else float(timeout)
        _require(timeout > 0, f"request_timeout_s must be positive, not {timeout:g}")
        _require(max_retries >= 0, f"max_retries must be 0 or more, not {max_retries}")
        _require(backoff_s >= 0, f"backoff_s must be 0 or more, not {backoff_s:g}")
        _require(max_reply_bytes > 0, f"max_reply_bytes must be positive, not {max_reply_bytes}")
        _require(max_tokens is None or max_tokens >= 1, f"max_tokens must be at least 1, not {max_tokens}")
        _require(image_tokens is None or image_tokens >= 0, f"image_tokens must be 0 or more, not {image_tokens}")
        _require(context_tokens is None or context_tokens >= 64,
                 f"context_tokens must be at least 64, not {context_tokens}")
        _require(spent_usd >= 0, f"spent_usd must be 0 or more, not {spent_usd:g}")
        for label, price in (("price_prompt_per_1k", price_prompt_per_1k),
                             ("price_completion_per_1k", price_completion_per_1k)):
            _require(price is None or price >= 0, f"{label} must be 0 or more, not {price}")
        if max_cost_usd is not None:
            _require(max_cost_usd >= 0, f"max_cost_usd must be 0 or more, not {max_cost_usd:g}")
            _require(price_prompt_per_1k is not None or price_completion_per_1k is not None,
                     "max_cost_usd needs prices (price_prompt_per_1k and/or price_completion_per_1k): "
                     "a cap with no prices caps nothing")
        self.model, self.api_key_env, self.on_event = model, api_key_env, on_event
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        # How hard it tries: each request's timeout, the retries and their backoff, the largest reply it reads.
        self.request_timeout_s, self.max_retries, self.backoff_s = timeout, max_retries, backoff_s
        self.max_reply_bytes, self.max_tokens = max_reply_bytes, max_tokens
        # What it may spend: prices per 1,000 tokens, and the cap over the whole run (resumes included).
        self.price_prompt_per_1k, self.price_completion_per_1k = price_prompt_per_1k, price_completion_per_1k
        self.max_cost_usd = max_cost_usd
        self.accepts_images, self.image_tokens = bool(images), image_tokens
        # What the server accepts, learnt from its rejections and kept for the rest of the run.
        self.json_mode, self.send_temperature, self.send_seed = json_mode, True, True
        self.max_tokens_parameter = "max_tokens"
        self.own_context_tokens = context_tokens  # given for this proposer: wins over the run's and the server's
        self.context_tokens: int | None = context_tokens  # else the model's context, where the server reports it
        # Accounting.
        self.spent_usd = float(spent_usd)
        self.prompt_tokens = self.completion_tokens = self.largest_completion_tokens = 0
        self._client = self._make_client()

    # -- public -----------------------------------------------------------------------------------------------------

    def propose(self, request: ProposalRequest) -> Reply:
        def messages() -> list[dict]:  # built per attempt: a server that refuses images gets the words only
            sent = [{"role": m.role, "content": m.content} for m in request.messages]
            if self.accepts_images and request.images and sent and sent[-1]["role"] == "user":
                sent[-1] = {"role": "user", "content": with_images(sent[-1]["content"], request.images)}
            return sent

        self._check_budget(request.messages)

        def params() -> dict:
            chosen: dict = {}
            if self.send_seed:
                chosen["seed"] = request.seed
            if self.send_temperature:
                chosen["temperature"] = request.temperature
            if self.json_mode:
                chosen["response_format"] = {"type": "json_object"}
            if self.max_tokens is not None:
                chosen[self.max_tokens_parameter] = self.max_tokens
            return chosen

        completion = self._exchange(lambda: self._chat(messages(), params()), params, self.url,
                                    self.max_retries + 1, random.Random(request.seed))
        return self._reply(completion)

    def check(self) -> None:
        """Before a run spends anything: does the endpoint answer, accept the key and know the model?

        Raises ProposerError with a one-line reason. Uses GET /models; where a server has no listing, or does not
        list the model, one minimal chat request (max_tokens=1) decides.
        """
        served = self._listed_models()
        if served is not None and (self.model in served or f"{self.model}:latest" in served):
            return
        try:
            probe = [{"role": "user", "content": "Say OK."}]
            completion = self._exchange(lambda: self._chat(probe, {self.max_tokens_parameter: 1}),
                                        lambda: {self.max_tokens_parameter: 1}, self.url, CHECK_ATTEMPTS,
                                        random.Random(0), patience_s=self.backoff_s * 2)
        except RequestFailed as exc:
            if exc.failure.status in (401, 403):
                raise ProposerError(str(exc)) from None
            listing = f"; the server lists: {_short_list(served)}" if served else ""
            raise ProposerError(f"the model {self.model!r} does not answer at {self.base_url}: "
                                f"{_without_url(str(exc), self.url)}{listing} (check the model name)") from None
        self._count(completion)  # the probe cost a few tokens
        if served:
            self._say(f"the model {self.model!r} is not in the server's /models listing but answers")

    def estimate_request_usd(self, messages: Sequence[Message]) -> float:
        """The cost of the next request, guessed before sending it: prompt ≈ characters / 4 tokens; completion =
        max_tokens, else the largest completion seen so far, else 1024 tokens."""
        prompt_tokens = math.ceil(sum(len(m.content) for m in messages) / CHARS_PER_TOKEN)
        completion_tokens = self.max_tokens or self.largest_completion_tokens or COMPLETION_TOKENS_GUESS
        return self._cost(prompt_tokens, completion_tokens)

    def close(self) -> None:
        self._client.close()

    # -- the exchange and its retries -------------------------------------------------------------------------------

    def _chat(self, messages: list[dict], params: dict) -> object:
        """One chat request; a 200 whose body is no chat completion is a ProposerError quoting the body."""
        raw = self._client.chat.completions.with_raw_response.create(
            model=self.model, messages=messages, **params)
        try:
            completion = raw.parse()
        except ValueError:  # JSON or schema trouble (pydantic's errors are ValueErrors too)
            completion = None
        choices = getattr(completion, "choices", None)
        if not choices or getattr(choices[0], "message", None) is None:
            text = raw.http_response.text
            raise ProposerError(f"{self.url}: the answer is not a chat completion: {text[:300]!r}")
        return completion

    def _exchange(self, send: Callable[[], object], params: Callable[[], dict], endpoint: str, max_attempts: int,
                  jitter: random.Random, patience_s: float | None = None) -> object:
        """Call ``send`` until it succeeds, retrying what a retry may fix, at most ``max_attempts`` times, waiting
        at most ``patience_s`` between attempts when given. ``params`` are the parameters ``send`` sends now: a
        rejected one is dropped and the request sent again at once, not counted as an attempt (each parameter
        can be dropped only once, so this ends)."""
        attempt = 1
        while True:
            try:
                return send()
            except openai.APIError as exc:
                if isinstance(exc, openai.APIStatusError) and self._adapt_to_rejection(exc, params()):
                    continue
                failure = judge(exc, self.request_timeout_s)
                too_long = context_error(failure.status, failure.detail)
                if too_long is not None:  # the same prompt would fail again: the caller shrinks it
                    raise ContextTooLong(f"{endpoint}: {failure.message}", too_long.limit_tokens) from None
            if not failure.retryable:
                raise RequestFailed(self._fatal_message(endpoint, failure), failure) from None
            if attempt >= max_attempts:
                raise RequestFailed(f"{endpoint}: gave up after {attempt} attempt{'s' * (attempt > 1)}; "
                                    f"last error: {failure.message}", failure) from None
            wait = self._wait_before_retry(attempt, failure.retry_after, jitter)
            if patience_s is not None:
                wait = min(wait, patience_s)
            attempt += 1
            self._say(f"{failure.brief}, retrying in {wait:.1f} s (attempt {attempt} of {max_attempts})")
            time.sleep(wait)

    def _adapt_to_rejection(self, exc: openai.APIStatusError, sent: dict) -> bool:
        """When a 400/422 names a parameter this client can do without, stop sending it; True to send again."""
        if exc.status_code not in (400, 422):
            return False
        named = (exc.param or "").lower()
        text = f"{named} {server_message(exc).lower()}"
        if self.accepts_images and any(word in text for word in ("image", "vision", "multimodal")):
            self.accepts_images = False
            self._say("the server rejected the image part: sending the words only for the rest of the run")
            return True
        if "max_tokens" in sent and "max_completion_tokens" in text:
            self.max_tokens_parameter = "max_completion_tokens"
            self._say("the server wants max_completion_tokens instead of max_tokens: switched for the rest of the run")
            return True
        droppable = ("temperature", "response_format", "seed")
        rejected = [p for p in droppable if p in sent and named == p] or [
            p for p in droppable if p in sent and p in text]
        if not rejected and "response_format" in sent and any(
                words in text for words in ("json_object", "json mode", "response format")):
            rejected = ["response_format"]
        if not rejected:
            return False
        if rejected[0] == "temperature":
            self.send_temperature = False
            self._say("the server rejected temperature: sending none for the rest of the run")
        elif rejected[0] == "seed":
            self.send_seed = False
            self._say("the server rejected seed: sending none for the rest of the run")
        else:
            self.json_mode = False
            self._say("the server rejected response_format (JSON mode): asking without it for the rest of the run")
        return True

    def _fatal_message(self, endpoint: str, failure: Failure) -> str:
        if failure.status in (401, 403):
            state = "is set" if os.environ.get(self.api_key_env) else "is not set"
            label = "unauthorised" if failure.status == 401 else "forbidden"
            return (f"{endpoint}: HTTP {failure.status} ({label}): {failure.detail}; "
                    f"check the API key in ${self.api_key_env} (it {state})")
        if failure.status == 404:
            return f"{endpoint}: {failure.message} (check the model name and the base URL)"
        return f"{endpoint}: {failure.message}"

    def _wait_before_retry(self, attempt: int, retry_after: float | None, jitter: random.Random) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_S)
        return min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S) + jitter.uniform(0, self.backoff_s)

    def _listed_models(self) -> list[str] | None:
        """The model ids GET /models lists; None when the server has no usable listing."""
        try:
            page = self._exchange(lambda: self._client.models.list(), lambda: {},
                                  self.base_url + "/models", CHECK_ATTEMPTS, random.Random(0),
                                  patience_s=self.backoff_s * 2)
        except RequestFailed as exc:
            status = exc.failure.status
            if status in (401, 403):
                raise ProposerError(str(exc)) from None
            if status is None:
                # Nothing answered at all: a chat request would fare no better.
                raise ProposerError(f"{self.base_url} does not answer: {exc.failure.message}") from None
            return None  # 404/405 (no listing) or a server error on it: let a chat request decide
        items = getattr(page, "data", None) or []
        for item in items:  # vLLM and others say how long a context the model has
            if str(getattr(item, "id", "")) == self.model:
                self.context_tokens = self.own_context_tokens or _reported_context(item) or self.context_tokens
        ids = [str(getattr(item, "id", "")) for item in items]
        return [i for i in ids if i] or None

    # -- replies and money ------------------------------------------------------------------------------------------

    def _reply(self, completion: Any) -> Reply:
        choice = completion.choices[0]  # _chat made sure there is one, with a message
        prompt_tokens, completion_tokens, cost = self._count(completion)
        finish_reason = str(choice.finish_reason or "")
        if finish_reason == "length":
            self._say(f"the reply was cut off at the token limit ({completion_tokens} completion tokens)")
        return Reply(choice.message.content or "", prompt_tokens, completion_tokens, cost,
                     str(getattr(completion, "model", "") or self.model), finish_reason)

    def _count(self, completion: object) -> tuple[int, int, float]:
        """Add a completion's usage and cost to the run's totals; returns (prompt, completion tokens, cost)."""
        usage = getattr(completion, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = self._cost(prompt_tokens, completion_tokens)
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.largest_completion_tokens = max(self.largest_completion_tokens, completion_tokens)
        self.spent_usd += cost
        return prompt_tokens, completion_tokens, cost

    def _cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * (self.price_prompt_per_1k or 0.0)
                + completion_tokens * (self.price_completion_per_1k or 0.0)) / 1000.0

    def _check_budget(self, messages: Sequence[Message]) -> None:
        if self.max_cost_usd is None:
            return
        estimate = self.estimate_request_usd(messages)
        if self.spent_usd + estimate > self.max_cost_usd:
            raise BudgetExceeded(f"spending cap reached: ${self.spent_usd:.4f} spent and the next request may cost "
                                 f"about ${estimate:.4f}, over the ${self.max_cost_usd:.4f} allowed (max_cost_usd)")

    # -- plumbing ---------------------------------------------------------------------------------------------------

    def _make_client(self) -> openai.OpenAI:
        key = os.environ.get(self.api_key_env) or ""
        # Without a key, send no Authorization header at all (a local server needs none): the openai client
        # insists on some key, so it gets a placeholder that a request hook removes. The key is read here only
        # and never stored by llm2. Passing the key (or the placeholder) also keeps the openai client from
        # reading $OPENAI_API_KEY when another variable was named.
        hooks = {} if key else {"request": [_drop_authorization]}
        transport = BoundedTransport(self.request_timeout_s, self.max_reply_bytes)
        return openai.OpenAI(api_key=key or NO_KEY, base_url=self.base_url, max_retries=0,
                             timeout=self.request_timeout_s,
                             http_client=httpx.Client(transport=transport, timeout=self.request_timeout_s,
                                                      event_hooks=hooks))

    def _say(self, line: str) -> None:
        if self.on_event is not None:
            self.on_event(line)


def with_images(text: str, images: Sequence[Image]) -> list[dict]:
    """A user message's content as parts: its words, then each picture as a PNG data URL (the OpenAI chat format,
    which vLLM, Ollama, llama.cpp and ``transformers serve`` read too)."""
    parts: list[dict] = [{"type": "text", "text": text}]
    for image in images:
        url = "data:image/png;base64," + base64.b64encode(image.png).decode("ascii")
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def _reported_context(item: object) -> int | None:
    for key in ("max_model_len", "context_length", "context_window", "max_context_length"):
        value = getattr(item, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _drop_authorization(request: httpx.Request) -> None:
    request.headers.pop("Authorization", None)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _short_list(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _without_url(message: str, url: str) -> str:
    return message[len(url) + 2:] if message.startswith(url + ": ") else message
