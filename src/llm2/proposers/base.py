"""The records a proposer receives and returns, its errors, and the protocol every proposer follows."""

from __future__ import annotations

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
class ProposalRequest:
    messages: tuple[Message, ...]  # the conversation so far, ending with a user message
    history: tuple[ScoredCandidate, ...]  # baselines and every candidate evaluated so far
    temperature: float
    seed: int  # per-request seed (run seed + candidate index), for reproducibility


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model: str = ""


class ProposerError(Exception):
    """The proposer could not produce a reply (retries exhausted, bad key, replay exhausted...)."""


class BudgetExceeded(ProposerError):
    """The spending cap was reached: the run stops cleanly."""


@runtime_checkable
class Proposer(Protocol):
    name: str

    def propose(self, request: ProposalRequest) -> Reply:
        """Answer the conversation in ``request`` with one reply."""
