"""Islands: several sub-populations, each with its own conversation and its own parents, that trade their best.

With ``islands`` N > 1, the n-th proposal of a generation belongs to island n mod N. Each island sees the run through
an ``IslandView``: the opening, then the turns of its own members (proposed there, migrated in, or seeded by a reset)
in the order they joined, and the baselines. Its parents are its evaluated members chosen by fitness and novelty
(mean behavioural-fingerprint distance to the island's other members), named in the request and, for the offline
proposers that rank ``history`` by fitness, the only members whose fitness the request carries.

Every ``migrate_every`` generations, before the next generation starts, each island's best moves to the next island
(a ring), and, with three islands or more, the weakest island (the lowest best fitness) is reset when the others hold
better: its members leave, and the best of every other island seed it. The step is one transaction in the archive (``population_tables``), done once, also on resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llm2.archive import Archive, CandidateRecord
from llm2.archive.population_tables import IslandMember, Move, members, migrations, plan_proposal, record_migration
from llm2.archive.records import MessageRecord
from llm2.archive.search_tables import fingerprints
from llm2.proposers.base import Message, ScoredCandidate

PARENTS = 2  # parents named per proposal
NOVELTY_WEIGHT = 0.5  # novelty (0..1) against the fitness rank (0..1) when parents are chosen
RESET_FROM = 3  # islands needed before the weakest is reset


class IslandView:
    """The archive as one island sees it: its candidates and its conversation; everything else passes through."""

    def __init__(self, archive: Archive, island: int):
        self._archive, self.island = archive, island

    def __getattr__(self, name: str):
        return getattr(self._archive, name)

    def candidates(self, status: str | None = None) -> list[CandidateRecord]:
        everything = self._archive.candidates()
        by_index = {c.index: c for c in everything}
        order = [m.index for m in members(self._archive, self.island)]
        own = [by_index[i] for i in dict.fromkeys(order) if i in by_index]  # a proposal planned but not yet added
        chosen = [c for c in everything if c.generation == 0] + own
        return [c for c in chosen if status is None or c.status == status]

    def messages(self) -> list[MessageRecord]:
        log = self._archive.messages()
        opening = [m for m in log if m.candidate_id is None]
        turns: dict[int, list[MessageRecord]] = {}
        for m in log:
            if m.candidate_id is not None:
                turns.setdefault(m.candidate_id, []).append(m)
        return opening + [m for c in self.candidates() if c.generation > 0 for m in turns.get(c.id, [])]


@dataclass(frozen=True)
class Plan:
    island: int
    parents: tuple[CandidateRecord, ...]


def island_of(position: int, islands: int) -> int:
    return position % islands


def plan(archive: Archive, index: int, position: int, islands: int, chooser=None) -> Plan:
    """The island and parents of proposal ``index`` (the ``position``-th of its generation), recorded once;
    ``chooser`` (the island's candidates -> parents) replaces fitness-and-novelty choice (MAP-Elites)."""
    island = island_of(position, islands)
    own = IslandView(archive, island).candidates()
    chosen = choose_parents(archive, own) if chooser is None else chooser(own)
    member = plan_proposal(archive, index, island, tuple(c.id for c in chosen))
    by_id = {c.id: c for c in archive.candidates()}
    return Plan(member.island, tuple(by_id[i] for i in member.parents if i in by_id))


def choose_parents(archive: Archive, candidates: list[CandidateRecord], count: int = PARENTS
                   ) -> tuple[CandidateRecord, ...]:
    """The island's evaluated proposals, one at a time, by fitness rank (1 for the best, towards 0) plus
    NOVELTY_WEIGHT times novelty: for the first, its mean fingerprint distance to the others; for each next, its
    distance to the nearest parent already chosen (each scaled by the pool's largest), so a twin of a parent loses."""
    pool = sorted((c for c in candidates if c.generation > 0 and c.status == "ok" and c.fitness is not None),
                  key=lambda c: (-c.fitness, c.id))
    vectors = {f.candidate_id: f.vector for f in fingerprints(archive)} if pool else {}
    rank = {c.id: 1.0 - i / len(pool) for i, c in enumerate(pool)}
    chosen: list[CandidateRecord] = []
    while pool and len(chosen) < count:
        novelty = {c.id: _distance(vectors.get(c.id), [vectors.get(o.id) for o in (chosen or pool) if o.id != c.id],
                                   nearest=bool(chosen)) for c in pool}
        top = max(novelty.values()) or 1.0
        pick = min(pool, key=lambda c: (-(rank[c.id] + NOVELTY_WEIGHT * novelty[c.id] / top), c.id))
        chosen.append(pick)
        pool = [c for c in pool if c.id != pick.id]
    return tuple(chosen)


def _distance(vector, others, nearest: bool) -> float:
    """Mean (or nearest) distance to the fingerprints of the same length; 0 without any (no novelty to tell)."""
    distances = [math.dist(vector, o) for o in others if vector and o and len(o) == len(vector)]
    if not distances:
        return 0.0
    return min(distances) if nearest else sum(distances) / len(distances)


def history(view: IslandView, parents: tuple[CandidateRecord, ...]) -> tuple[ScoredCandidate, ...]:
    """The island's candidates for offline proposers: baselines and parents with their fitness, the island's other
    members without (they are still seen, so not proposed again)."""
    parent_ids = {c.id for c in parents}
    return tuple(
        ScoredCandidate(name=c.name, code=c.code, thought=c.thought, status=c.status,
                        fitness=c.fitness if c.generation == 0 or c.id in parent_ids or not parents else None)
        for c in view.candidates() if c.code)


def with_parents_note(messages: tuple[Message, ...], note: str) -> tuple[Message, ...]:
    """The note rides on the last user message, so roles keep alternating."""
    if not note or not messages or messages[-1].role != "user":
        return messages
    return (*messages[:-1], Message("user", messages[-1].content + "\n\n" + note))


def migrate_if_due(archive: Archive, generation: int, islands: int, every: int) -> dict | None:
    """Before ``generation`` starts: the migration step of the generation before it, when one is due and not yet
    recorded; what it did, or None."""
    done = generation - 1
    if islands < 2 or done < 1 or done % every or done in migrations(archive):
        return None
    by_index = {c.index: c for c in archive.candidates()}
    best: dict[int, CandidateRecord | None] = {}
    for island in range(islands):
        scored = [by_index[m.index] for m in members(archive, island) if m.index in by_index
                  and by_index[m.index].status == "ok" and by_index[m.index].fitness is not None]
        best[island] = max(scored, key=lambda c: (c.fitness, -c.id), default=None)
    weakest = min(range(islands), key=lambda i: (-math.inf if best[i] is None else best[i].fitness, -i))
    active = {(m.island, m.index) for m in members(archive)}
    elites = list({best[i].id: best[i] for i in range(islands) if i != weakest and best[i] is not None}.values())
    # a reset needs a third island (with two it would only copy the other) and elites better than what it has
    reset = weakest if islands >= RESET_FROM and elites and (
        best[weakest] is None or max(c.fitness for c in elites) > best[weakest].fitness) else None
    moves = [Move((i + 1) % islands, best[i].index, "migrated") for i in range(islands)
             if best[i] is not None and (i + 1) % islands != reset and ((i + 1) % islands, best[i].index) not in active]
    moves += [Move(weakest, c.index, "reset") for c in elites] if reset is not None else []
    detail = {"best": {str(i): None if c is None else {"candidate": c.id, "fitness": c.fitness}
                       for i, c in best.items()},
              "moves": [{"to": m.island, "candidate": by_index[m.index].id, "via": m.via} for m in moves],
              "reset": reset}
    return detail if record_migration(archive, done, moves, reset, detail) else None


def members_of(archive: Archive) -> list[IslandMember]:
    """Every membership ever recorded, the reset ones included (for reports and tests)."""
    return members(archive, active_only=False)
