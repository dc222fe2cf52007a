"""The proposer's prompt within a token budget, filled by priority.

The budget comes from ``--context-tokens`` or from the context the server reports for its model, less room for the
reply. What goes in, in order of priority: the opening (system prompt and the task card with its baselines), the
best candidates with their code, the most recent turns of the conversation (each candidate's reply and its
feedback), then every older candidate summarised in one line. When all of it does not fit, the one-line summary is
cut first, then the recent turns (which join the summary), then the best candidates. With ``--history full`` the whole log is sent while it
fits. A server that still refuses the prompt as too long (``ContextTooLong``) gets a smaller budget
(``shrunk_budget``) and the same request again.

A picture sent with the prompt (``fit_prompt``) counts in the budget at its estimated token cost
(``curve_images.image_tokens``). It ranks below the opening, the best candidates and the recent turns, above the
one-line summary: it goes only when the words beside it keep as many best candidates and recent turns as they
would without it; else it is left out and the words get the whole budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

from llm2.archive import Archive, CandidateRecord, RunEvent
from llm2.archive.ranking import ranked
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.feedback import details, fmt
from llm2.discovery.prompts import PromptBook
from llm2.proposers.base import ContextTooLong, Message

CHARS_PER_TOKEN = 4.0  # the usual rough ratio; a server that counts more refuses, and the prompt is shrunk
MESSAGE_OVERHEAD_TOKENS = 8  # the chat template's tokens around each message
MAX_SHRINKS = 6  # smaller prompts tried for one candidate before it is recorded as unusable
SHRINK_FACTOR = 0.7  # a refused prompt's estimate times this, when the server did not say its context
# a resume that changes one of these asks another server or model, or leaves the reply other room: what was learnt
# of the old context no longer holds
SERVER_OPTIONS = ("model", "base_url", "max_tokens")


def estimate_tokens(messages: tuple[Message, ...]) -> int:
    return sum(math.ceil(len(m.content) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def reply_room(context_tokens: int, max_tokens: int | None) -> int:
    """Tokens kept free for the reply: the proposer's max_tokens, else a quarter of the context."""
    return max_tokens if max_tokens else context_tokens // 4


def shrunk_budget(sent: tuple[Message, ...], error: ContextTooLong, max_tokens: int | None,
                  image_tokens: int = 0) -> int:
    """A prompt budget below what the server refused: its stated context less the reply's room (and under the
    refused prompt's estimate); where it did not state one, a good step under the refused prompt's estimate.
    ``image_tokens``: what the pictures sent with the refused prompt count for."""
    estimate = estimate_tokens(sent) + image_tokens
    if error.limit_tokens:
        return max(1, min(estimate - 1, error.limit_tokens - reply_room(error.limit_tokens, max_tokens)))
    return max(1, int(estimate * SHRINK_FACTOR))


def learnt_budgets(events: Iterable[RunEvent]) -> dict[str, int]:
    """The prompt budget each proposer (by label) learnt from its server's refusals in the run's earlier sessions:
    its latest ``prompt_shrunk`` event, so a resumed run does not first send a prompt its server refused before. A
    resume that changed the proposer's server, model or reply room forgets them."""
    budgets: dict[str, int] = {}
    for event in events:
        if event.kind == "resumed" and _changes_server(event.detail):
            budgets.clear()
        elif event.kind == "prompt_shrunk":
            label, budget = event.detail.get("proposer"), event.detail.get("budget_tokens")
            if isinstance(label, str) and type(budget) is int and budget > 0:
                budgets[label] = budget
    return budgets


def _changes_server(resumed: dict) -> bool:
    change = resumed.get("changed", {}).get("proposer_options")
    if not isinstance(change, dict):
        return False
    before, after = change.get("from") or {}, change.get("to") or {}
    return any(before.get(name) != after.get(name) for name in SERVER_OPTIONS)


@dataclass(frozen=True)
class _Shape:
    best: int  # best candidates shown with their code
    recent: int  # latest finished candidates shown as whole turns
    older: int  # other candidates, one line each


def bounded_messages(archive: Archive, config: DiscoveryConfig, book: PromptBook,
                     metrics_text: Callable[[dict], str], budget_tokens: int) -> tuple[Message, ...]:
    """The richest prompt whose estimate fits ``budget_tokens`` (else the opening alone, the smallest there is)."""
    return _richest(archive, config, book, metrics_text, budget_tokens).messages


def fit_prompt(archive: Archive, config: DiscoveryConfig, book: PromptBook, metrics_text: Callable[[dict], str],
               budget_tokens: int, image_tokens: int) -> tuple[tuple[Message, ...], bool]:
    """The prompt's words within ``budget_tokens`` and whether pictures costing ``image_tokens`` go beside them:
    they go when the words, with the pictures' cost taken off the budget, still keep every best candidate and
    recent turn they keep without it (only the one-line summary may be shorter for them)."""
    words = _richest(archive, config, book, metrics_text, budget_tokens)
    if image_tokens <= 0:
        return words.messages, True
    beside = _richest(archive, config, book, metrics_text, budget_tokens - image_tokens)
    if beside.fits and beside.kept == words.kept:
        return beside.messages, True
    return words.messages, False


@dataclass(frozen=True)
class _Fitted:
    messages: tuple[Message, ...]
    kept: tuple  # what of the best candidates and recent turns it holds: ("log",) or (best, recent)
    fits: bool  # False: even the smallest prompt is over the budget


def _richest(archive: Archive, config: DiscoveryConfig, book: PromptBook, metrics_text: Callable[[dict], str],
             budget_tokens: int) -> _Fitted:
    log = [Message(m.role, m.content) for m in archive.messages()]
    if len(log) <= 2 or (config.history == "full" and estimate_tokens(tuple(log)) <= budget_tokens):
        return _Fitted(tuple(log), ("log",), estimate_tokens(tuple(log)) <= budget_tokens)
    turns: dict[int, list[Message]] = {}
    for m in archive.messages():
        if m.candidate_id is not None:
            turns.setdefault(m.candidate_id, []).append(Message(m.role, m.content))
    finished = [c for c in archive.candidates() if c.id in turns]
    messages: tuple[Message, ...] = tuple(log[:2])
    for shape in _shapes(config, len(finished)):
        messages = _build(log[:2], finished, turns, shape, book, metrics_text)
        if estimate_tokens(messages) <= budget_tokens:
            return _Fitted(messages, (shape.best, shape.recent), True)
    return _Fitted(messages, (0, 0), False)


def _shapes(config: DiscoveryConfig, finished: int) -> list[_Shape]:
    """From the richest to the smallest, by priority: the best candidates, then the recent turns, then the one-line
    summary of the rest (which takes in the turns that no longer fit whole)."""
    return [_Shape(best, recent, older) for best in _halvings(config.top_k)
            for recent in _halvings(finished if config.history == "full" else min(config.recent, finished))
            for older in _halvings(finished)]


def _halvings(start: int) -> list[int]:
    values = [start]
    while values[-1]:
        values.append(values[-1] // 2)
    return values


def _build(opening: list[Message], finished: list[CandidateRecord], turns: dict[int, list[Message]], shape: _Shape,
           book: PromptBook, metrics_text: Callable[[dict], str]) -> tuple[Message, ...]:
    best = ranked(finished, include_baselines=False)[:shape.best]
    recent = finished[len(finished) - shape.recent:] if shape.recent else []
    shown = {c.id for c in best} | {c.id for c in recent}
    older = [c for c in reversed(finished) if c.id not in shown]
    parts = [opening[1].content]
    if best:
        entries = "\n\n".join(
            f"{rank}. {c.name}: fitness {fmt(c.fitness, c.fitness_std)}{details(metrics_text(c.metrics), ', ')}"
            f"\n```python\n{c.code}\n```" for rank, c in enumerate(best, 1))
        parts.append(book.render("topk_summary", count=len(best), entries=entries))
    if older and shape.older:
        lines = "\n".join(f"- {_one_line(c)}" for c in older[:shape.older])
        parts.append(book.render("older_summary", count=min(shape.older, len(older)), total=len(older), lines=lines))
    # the summaries ride on the opening user message so that roles keep alternating
    messages = [opening[0], Message("user", "\n\n".join(parts))]
    for candidate in recent:
        messages.extend(turns[candidate.id])
    return tuple(messages)


def _one_line(candidate: CandidateRecord) -> str:
    if candidate.fitness is not None:
        return f"{candidate.name}: fitness {fmt(candidate.fitness, candidate.fitness_std)}"
    reasons = (candidate.error or "").strip().splitlines()
    return f"{candidate.name}: {candidate.status}" + (f" ({reasons[0][:120]})" if reasons else "")
