"""A prompt that learns: every G generations the proposer rewrites the advice part of its prompt; the new advice is
kept only if the proposals made under it did at least as well as those made under the old one.

The advice rides on each request's last user message (the conversation's log is left as it was). The step, before
generation g starts when g - 1 is a multiple of G: judge the advice on trial, if any — the mean reward of the
proposals of its G generations against the G generations before it, a proposal's reward being its fitness above the
reference baseline, 0 when below or invalid — and keep it or revert to the old one (``advice_kept`` /
``advice_reverted`` run events, with that evidence); then ask for a new advice to try (``advice_proposed``, with
its text). A proposer with ``rewrite_advice(advice, worked, failed)`` (an offline one) answers with a rule-based
rewrite; any other is sent the ``advice_rewrite`` request, and its reply (untrusted text) is the new advice. Every
step is a run event in the archive, so a resumed run knows the advice in force and the trial under way.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm2.archive import Archive, CandidateRecord
from llm2.archive.text import clean_text
from llm2.discovery.prompts import PromptBook
from llm2.proposers.base import Message, ProposalRequest

MAX_ADVICE_CHARS = 2000  # a rewritten advice is cut here: it rides on every request


@dataclass(frozen=True)
class AdviceState:
    kept: str  # the advice in force when no trial is open
    trial: str | None  # the advice on trial
    trial_from: int | None  # the first generation asked under the trial


def state(archive: Archive, book: PromptBook) -> AdviceState:
    kept, trial, since = book.render("advice"), None, None
    for event in archive.run_events():
        if event.kind == "advice_proposed":
            trial, since = event.detail["text"], event.detail["from_generation"]
        elif event.kind == "advice_kept":
            kept, trial, since = event.detail["text"], None, None
        elif event.kind == "advice_reverted":
            trial, since = None, None
    return AdviceState(kept, trial, since)


def in_force(current: AdviceState) -> str:
    return current.trial if current.trial is not None else current.kept


def mean_reward(candidates: list[CandidateRecord], first: int, last: int, reference: float | None) -> float | None:
    window = [c for c in candidates if first <= c.generation <= last and c.status not in ("pending", "duplicate")]
    if not window:
        return None
    return sum(max(0.0, c.fitness - (reference or 0.0)) if c.fitness is not None else 0.0 for c in window) / len(window)


def step(archive: Archive, book: PromptBook, proposer, generation: int, every: int, reference: float | None,
         seed: int) -> str | None:
    """The advice step before ``generation`` (see the module's doc); a line saying what it did, or None."""
    if not every or generation <= 1 or (generation - 1) % every:
        return None
    current, said = state(archive, book), []
    candidates = archive.candidates()
    if current.trial is not None and current.trial_from is not None:
        if current.trial_from >= generation:
            return None  # already proposed for this generation (a resumed run)
        new = mean_reward(candidates, current.trial_from, generation - 1, reference)
        old = mean_reward(candidates, current.trial_from - every, current.trial_from - 1, reference)
        keep = new is not None and (old is None or new >= old)
        evidence = {"text": current.trial, "previous": current.kept, "mean_reward_under_it": new,
                    "mean_reward_before": old, "generations": [current.trial_from, generation - 1]}
        archive.add_run_event("advice_kept" if keep else "advice_reverted", evidence)
        said.append("the new advice is kept" if keep else "the new advice did worse: reverted to the old one")
        current = state(archive, book)
    text = _rewrite(proposer, book, current.kept, candidates, reference, seed)
    archive.add_run_event("advice_proposed", {"text": text, "from_generation": generation, "previous": current.kept})
    said.append("a rewritten advice is on trial")
    return "advice: " + "; ".join(said)


def _rewrite(proposer, book: PromptBook, advice: str, candidates: list[CandidateRecord], reference: float | None,
             seed: int) -> str:
    proposals = [c for c in candidates if c.generation > 0 and c.status not in ("pending", "duplicate")]
    worked = [c for c in proposals if c.fitness is not None and c.fitness > (reference or 0.0)]
    failed = [c for c in proposals if c not in worked]
    if hasattr(proposer, "rewrite_advice"):
        text = proposer.rewrite_advice(advice, tuple(c.name for c in worked), tuple(c.name for c in failed))
    else:
        prompt = book.render("advice_rewrite", advice=advice, worked=_lines(worked), failed=_lines(failed))
        text = proposer.propose(ProposalRequest(messages=(Message("user", prompt),), history=(), temperature=0.7,
                                                seed=seed)).text
    return clean_text(str(text)).strip()[:MAX_ADVICE_CHARS] or advice


def _lines(candidates: list[CandidateRecord]) -> str:
    return "\n".join(f"- {c.name}: " + (f"fitness {c.fitness:.4g}" if c.fitness is not None else c.status)
                     for c in candidates[-8:]) or "(none)"


def with_advice(messages: tuple[Message, ...], book: PromptBook, advice: str) -> tuple[Message, ...]:
    if not messages or messages[-1].role != "user":
        return messages
    return (*messages[:-1], Message("user", messages[-1].content + "\n\n" + book.render("advice_note", advice=advice)))
