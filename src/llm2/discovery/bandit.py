"""Several proposers, one run: a UCB1 bandit picks which one writes each proposal from what each has earned.

An arm's reward for one proposal is the improvement it earned — its fitness above the run's reference baseline,
floored at 0 (an invalid or worse proposal earns 0) — per unit of cost: the dollars its replies cost where it has a
price, else the evaluation seconds it took (per core-second, for local and offline proposers). The evidence is read
from the archive (each candidate records the arm that wrote it), so a resumed run chooses as the killed one would
have. Arms never tried are tried first, in order; ties go to the earlier arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from llm2.archive import CandidateRecord
from llm2.proposers.base import ProposalRequest, ProposerError, Reply, check_before_run

EXPLORATION = 1.0  # UCB1's constant, on rewards scaled by the best arm's mean


@dataclass(frozen=True)
class ArmRecord:
    label: str  # as recorded on each candidate it wrote
    pulls: int
    mean_reward: float  # improvement per dollar (or per evaluation second)


def rewards(candidates: list[CandidateRecord], labels: tuple[str, ...], reference: float | None
            ) -> dict[str, list[float]]:
    """Each arm's reward per finished proposal, in proposal order."""
    earned: dict[str, list[float]] = {label: [] for label in labels}
    for c in candidates:
        if c.generation == 0 or c.proposer not in earned or c.status in ("pending", "duplicate"):
            continue
        cost = c.cost_usd if c.cost_usd > 0 else max(c.seconds or 0.0, 1e-3)
        earned[c.proposer].append(gain(c, reference) / cost)
    return earned


def gain(candidate: CandidateRecord, reference: float | None) -> float:
    """The improvement a finished proposal earned: its fitness above the reference (above 0 without one), 0 when
    below or without a fitness."""
    return max(0.0, candidate.fitness - (reference or 0.0)) if candidate.fitness is not None else 0.0


def choose(earned: dict[str, list[float]], labels: tuple[str, ...]) -> str:
    for label in labels:
        if not earned[label]:
            return label
    total = sum(len(v) for v in earned.values())
    means = {label: sum(earned[label]) / len(earned[label]) for label in labels}
    scale = max(means.values()) or 1.0
    return max(labels, key=lambda label: (means[label] / scale
                                          + EXPLORATION * math.sqrt(2 * math.log(total) / len(earned[label])),
                                          -labels.index(label)))


class ProposerBandit:
    """A proposer made of several (``arms``: label -> proposer); ``name`` is the label of the one that wrote the
    latest reply, which the loop records on the candidate."""

    def __init__(self, arms: dict[str, object]):
        self.arms = arms
        # the run's candidates and its reference fitness; the loop binds it to its archive (bind_evidence)
        self.evidence: Callable[[], tuple[list[CandidateRecord], float | None]] = lambda: ([], None)
        self.labels = tuple(arms)
        self.name = self.labels[0]
        self.selects = False  # True once the loop selects the proposer of each proposal itself
        self.spent_usd = 0.0  # the run's spending in all (the loop sets what earlier sessions spent)
        self._note: Callable[[str], None] | None = None

    # What the loop asks of "the proposer" is asked of the arm last selected: each arm keeps its own context,
    # reply room and pictures (one whose server refused images gets words; the others keep sending them).
    @property
    def current(self) -> object:
        return self.arms[self.name]

    @property
    def model(self) -> str | None:  # recorded with each request: the model of the arm that was asked
        return getattr(self.current, "model", None)

    @property
    def accepts_images(self) -> bool:
        return bool(getattr(self.current, "accepts_images", False))

    @property
    def image_tokens(self) -> int | None:
        return getattr(self.current, "image_tokens", None)

    @property
    def context_tokens(self) -> int | None:
        return getattr(self.current, "context_tokens", None)

    @property
    def own_context_tokens(self) -> int | None:
        return getattr(self.current, "own_context_tokens", None)

    @property
    def max_tokens(self) -> int | None:
        return getattr(self.current, "max_tokens", None)

    @property
    def on_event(self) -> Callable[[str], None] | None:
        return self._note

    @on_event.setter
    def on_event(self, note: Callable[[str], None] | None) -> None:
        self._note = note
        for label, arm in self.arms.items():  # each arm's lines name it
            if hasattr(arm, "on_event"):
                arm.on_event = None if note is None else (lambda line, label=label: note(f"{label}: {line}"))

    def bind_evidence(self, evidence: Callable[[], tuple[list[CandidateRecord], float | None]]) -> None:
        self.evidence = evidence

    def select(self) -> str:
        """Choose the proposer of the next proposal (the loop asks before it builds the request, whose temperature
        may depend on the proposer); from then on every ``propose`` (re-asks included) goes to the proposer last
        selected. Without ``select``, each ``propose`` chooses afresh."""
        candidates, reference = self.evidence()
        self.name = choose(rewards(candidates, self.labels, reference), self.labels)
        self.selects = True
        return self.name

    def check(self) -> None:
        """Each arm's own check before the run (its server answers, knows its model, takes its key); the first
        that fails names its label."""
        for label, arm in self.arms.items():
            try:
                check_before_run(arm)
            except ProposerError as exc:
                raise ProposerError(f"{label}: {exc}") from None

    def propose(self, request: ProposalRequest) -> Reply:
        if not self.selects:
            candidates, reference = self.evidence()
            self.name = choose(rewards(candidates, self.labels, reference), self.labels)
        arm = self.arms[self.name]
        if hasattr(arm, "spent_usd"):  # one --max-cost for the run: each arm's cap counts what all of them spent
            arm.spent_usd = self.spent_usd
        reply = arm.propose(request)
        self.spent_usd += reply.cost_usd
        return reply

    def records(self) -> list[ArmRecord]:
        candidates, reference = self.evidence()
        earned = rewards(candidates, self.labels, reference)
        return [ArmRecord(label, len(earned[label]), sum(earned[label]) / len(earned[label]) if earned[label] else 0.0)
                for label in self.labels]
