"""The conversation with the proposer, kept in the archive as an append-only log of messages.

A candidate's turn — its unusable replies and the re-ask prompts after them, its reply, the feedback on it — is
appended once it has feedback, in one transaction, rebuilt from what the archive holds (the recorded requests and
the candidate's reply events), so a run killed at any point logs every turn exactly once when it resumes.
``sync_messages`` is the one place that appends them, at the end of each generation and on resume.
"""

from __future__ import annotations

import json
from typing import Callable

from llm2.archive import Archive, CandidateRecord
from llm2.archive.ranking import ranked
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.feedback import details, fmt
from llm2.discovery.prompts import PromptBook
from llm2.proposers.base import Message, ScoredCandidate

UNKEPT_REPLY = "(an unusable reply; its text was not kept)"


def reply_text(candidate: CandidateRecord) -> str:
    """The reply as the proposer should see it in later turns: its JSON, whatever repairs it needed."""
    return json.dumps({"thought": candidate.thought, "name": candidate.name, "code": candidate.code}, indent=1,
                      ensure_ascii=False)


def turn(archive: Archive, book: PromptBook, candidate: CandidateRecord) -> list[tuple[str, str]]:
    """The messages of one finished candidate's turn, from the archive alone."""
    replies = [r.reply for r in archive.requests(index=candidate.index) if r.reply is not None]
    reasks = [event.removeprefix("reask:") for event in candidate.reply_events if event.startswith("reask:")]
    messages: list[tuple[str, str]] = []
    for text, reason in zip(replies, reasks):
        messages += [("assistant", text), ("user", book.render("reask", reason=reason))]
    if candidate.code:
        messages.append(("assistant", reply_text(candidate)))
    else:  # an unusable last reply is logged as it came
        last = replies[len(reasks)] if len(replies) > len(reasks) else UNKEPT_REPLY
        messages.append(("assistant", last))
    messages.append(("user", candidate.feedback or ""))
    return messages


def sync_messages(archive: Archive, book: PromptBook) -> None:
    """Append the turn of every candidate that has feedback and is not in the log yet, in proposal order."""
    logged = {m.candidate_id for m in archive.messages() if m.candidate_id is not None}
    for candidate in archive.candidates():
        if candidate.is_baseline or candidate.generation == 0 or candidate.id in logged or not candidate.feedback:
            continue
        archive.add_turn(turn(archive, book, candidate), candidate.id)


def start_conversation(archive: Archive, *, system: str, intro: str) -> None:
    if not archive.messages():
        archive.add_turn([("system", system), ("user", intro)])


def request_messages(archive: Archive, config: DiscoveryConfig, book: PromptBook,
                     metrics_text: Callable[[dict], str]) -> tuple[Message, ...]:
    """The messages of the next request: the whole log (``full``), or the opening plus the best and the latest."""
    log = [Message(m.role, m.content) for m in archive.messages()]
    if config.history == "full" or len(log) <= 2:
        return tuple(log)
    opening, per_candidate = log[:2], _messages_by_candidate(archive)
    finished = [c for c in archive.candidates() if c.id in per_candidate]
    best = ranked(finished, include_baselines=False)[: config.top_k]
    entries = "\n\n".join(
        f"{rank}. {c.name}: fitness {fmt(c.fitness, c.fitness_std)}{details(metrics_text(c.metrics), ', ')}"
        f"\n```python\n{c.code}\n```"
        for rank, c in enumerate(best, 1)
    )
    summary = book.render("topk_summary", count=len(best), entries=entries or "(none yet)")
    recent: list[Message] = []
    for candidate in finished[-config.recent:]:
        recent.extend(per_candidate[candidate.id])
    # The summary rides on the opening user message so roles keep alternating.
    first_user = Message("user", opening[1].content + "\n\n" + summary)
    return (opening[0], first_user, *recent)


def _messages_by_candidate(archive: Archive) -> dict[int, list[Message]]:
    grouped: dict[int, list[Message]] = {}
    for m in archive.messages():
        if m.candidate_id is not None:
            grouped.setdefault(m.candidate_id, []).append(Message(m.role, m.content))
    return grouped


def scored_history(archive: Archive) -> tuple[ScoredCandidate, ...]:
    """Baselines and every candidate so far, for proposers that reason over results (the offline ones).

    Pending candidates are included (fitness None) so proposals of one generation do not repeat each other.
    """
    return tuple(
        ScoredCandidate(name=c.name, code=c.code, fitness=c.fitness, status=c.status, thought=c.thought)
        for c in archive.candidates()
        if c.code
    )
