"""The conversation with the proposer, kept in the archive as an append-only log of messages.

A candidate's messages (any re-asks, its reply, the feedback on it) are appended only once it is finished, in
proposal order, so the log always alternates user/assistant even when a generation's candidates were proposed and
evaluated side by side. ``sync_messages`` is the one place that appends them, at the end of each generation and on
resume; it skips candidates already logged, so a run killed half-way through appending repairs itself.
"""

from __future__ import annotations

import json

from llm2.archive import Archive, CandidateRecord
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.feedback import fmt
from llm2.discovery.prompts import PromptBook
from llm2.proposers.base import Message, ScoredCandidate


def reply_text(candidate: CandidateRecord) -> str:
    """The reply as the proposer should see it in later turns: its JSON, whatever repairs it needed."""
    return json.dumps({"thought": candidate.thought, "name": candidate.name, "code": candidate.code}, indent=1,
                      ensure_ascii=False)


def sync_messages(archive: Archive, exchanges: dict[int, list[Message]] | None = None) -> None:
    """Append the messages of every finished candidate not yet in the log, in proposal order."""
    logged = {m.candidate_id for m in archive.messages() if m.candidate_id is not None and m.role == "user"}
    for candidate in archive.candidates():
        if candidate.status in ("pending", "baseline") or candidate.id in logged or candidate.feedback is None:
            continue
        extra = (exchanges or {}).get(candidate.id, [])
        for message in extra:
            archive.add_message(message.role, message.content, candidate.id)
        if candidate.code:
            archive.add_message("assistant", reply_text(candidate), candidate.id)
        elif not extra:  # an unusable reply whose text was lost in a crash: keep the roles alternating
            archive.add_message("assistant", "(an unusable reply; its text was not kept)", candidate.id)
        archive.add_message("user", candidate.feedback, candidate.id)


def start_conversation(archive: Archive, book: PromptBook, *, system: str, intro: str) -> None:
    if not archive.messages():
        archive.add_message("system", system)
        archive.add_message("user", intro)


def request_messages(archive: Archive, config: DiscoveryConfig, book: PromptBook) -> tuple[Message, ...]:
    """The messages of the next request: the whole log (``full``), or the opening plus the best and the latest."""
    log = [Message(m.role, m.content) for m in archive.messages()]
    if config.history == "full" or len(log) <= 2:
        return tuple(log)
    opening, per_candidate = log[:2], _messages_by_candidate(archive)
    finished = [c for c in archive.candidates() if c.id in per_candidate]
    best = sorted((c for c in finished if c.status == "ok"), key=lambda c: -(c.fitness or 0.0))[: config.top_k]
    entries = "\n\n".join(
        f"{rank}. {c.name}: fitness {fmt(c.fitness, c.fitness_std)}, KL {fmt(c.kl)}\n```python\n{c.code}\n```"
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
    """Baselines and every candidate so far, for proposers that reason over results (the symbolic one).

    Pending candidates are included (fitness None) so proposals of one generation do not repeat each other.
    """
    return tuple(
        ScoredCandidate(name=c.name, code=c.code, fitness=c.fitness, status=c.status, thought=c.thought)
        for c in archive.candidates()
        if c.code
    )
