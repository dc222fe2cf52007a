"""The records a proposer receives and returns, its errors, and the protocol every proposer follows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ScoredCandidate:
    """A baseline or an evaluated candidate, as the proposer may see it."""

    name: str
    code: str
    fitness: float | None  # None when the candidate was rejected or failed
    status: str
    thought: str = ""


@dataclass(frozen=True)
class Image:
    """A picture that goes with the request's last user message (e.g. the plot of the latest candidate's training
    curves), drawn by trusted code from archived numbers. Only proposers that accept images send it."""

    png: bytes
    caption: str  # what the picture shows, in a few words (for the record; never the picture itself)


@dataclass(frozen=True)
class ProposalRequest:
    messages: tuple[Message, ...]  # the conversation so far, ending with a user message
    history: tuple[ScoredCandidate, ...]  # baselines and every candidate evaluated so far
    temperature: float
    seed: int  # per-request seed (run seed + candidate index), for reproducibility
    images: tuple[Image, ...] = ()  # for the last user message; a proposer without images sends the words only


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model: str = ""
    finish_reason: str = ""  # as the server said: "stop", "length" (cut off at the token limit), ... or unknown


class ProposerError(Exception):
    """The proposer could not produce a reply (retries exhausted, bad key, replay exhausted...)."""


class BudgetExceeded(ProposerError):
    """The spending cap was reached: the run stops cleanly."""


class ContextTooLong(ProposerError):
    """The server refused the prompt as longer than its context; the caller shrinks it and asks again.
    ``limit_tokens``: the context the server said it has, when it said."""

    def __init__(self, message: str, limit_tokens: int | None = None):
        super().__init__(message)
        self.limit_tokens = limit_tokens


# How servers word a prompt that does not fit (OpenAI, vLLM, llama.cpp, TGI, transformers serve, Ollama...).
_CONTEXT_PHRASES = ("context length", "context window", "context size", "maximum context", "context_length",
                    "prompt is too long", "too many tokens", "input is too long", "exceeds the model", "max_model_len",
                    "maximum sequence length", "input tokens exceed", "max_new_tokens must be")
_LIMIT = re.compile(r"(?:context (?:length|window|size)|max_model_len|maximum (?:sequence )?length|must be <=)"
                    r"\D{0,40}?(\d[\d,]*)",
                    re.IGNORECASE)


def context_error(status: int | None, text: str) -> ContextTooLong | None:
    """A ContextTooLong when an HTTP error's text says the prompt is over the server's context, else None."""
    if status not in (400, 413, 422) or not any(phrase in text.lower() for phrase in _CONTEXT_PHRASES):
        return None
    match = _LIMIT.search(text)
    return ContextTooLong(text, int(match.group(1).replace(",", "")) if match else None)


@runtime_checkable
class Proposer(Protocol):
    """Every proposer has a ``name`` and ``propose``. It may also have:

    - ``check() -> None``: verify, before a run spends anything, that it can answer at all (endpoint up, key
      accepted, model known); raises ProposerError with a one-line reason. See ``check_before_run``.
    - ``accepts_images``: True when it sends ``request.images`` with the last user message (the loop draws them
      only then); absent or False: it gets the words only.
    - ``on_event``: an attribute holding ``Callable[[str], None] | None``, called with a short line while it
      waits or adapts (a retry, a dropped parameter, a reply cut off).
    """

    name: str

    def propose(self, request: ProposalRequest) -> Reply:
        """Answer the conversation in ``request`` with one reply."""


@runtime_checkable
class SelfChecking(Protocol):
    """A proposer that can verify its setup before a run (the optional ``check`` of Proposer)."""

    def check(self) -> None:
        """Raise ProposerError with a one-line, actionable reason when proposing cannot work."""


def check_before_run(proposer: object) -> None:
    """Call the proposer's ``check()`` when it has one; proposers without it are taken as ready."""
    if isinstance(proposer, SelfChecking):
        proposer.check()
