"""What a population keeps beside the candidates (schema 4): each island's members in the order they joined (by
proposal, migration or reset), each proposal's parents, and one row per migration step.

A migration step (its moves, its reset and its row) is written in one transaction, so a run killed at any point
has either all of it or none of it, and resuming does the missing step once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from llm2.archive.store import Archive


@dataclass(frozen=True)
class IslandMember:
    island: int
    index: int  # the candidate's proposal index (known before the proposer is asked, like its requests)
    via: str  # proposed | migrated | reset (an elite seeded into a reset island)
    parents: tuple[int, ...]  # the candidates shown to the proposer as parents (proposed members only)
    migration: int | None  # the generation of the migration step that brought it, None for a proposal
    active: bool  # False once its island was reset


@dataclass(frozen=True)
class Move:
    """One candidate joining an island in a migration step."""
    island: int
    index: int
    via: str  # migrated | reset


def plan_proposal(archive: Archive, index: int, island: int, parents: tuple[int, ...]) -> IslandMember:
    """The island and parents of proposal ``index``: recorded before the proposer is asked; a proposal already
    planned (a run killed while asking) keeps what was recorded."""
    with archive._write() as db:
        row = db.execute("SELECT * FROM island_members WHERE idx = ? AND via = 'proposed'", (index,)).fetchone()
        if row is None:
            db.execute("INSERT INTO island_members (island, idx, via, parents) VALUES (?, ?, 'proposed', ?)",
                       (island, index, json.dumps(list(parents))))
            return IslandMember(island, index, "proposed", parents, None, True)
    return _member(row)


def _member(row) -> IslandMember:
    return IslandMember(row["island"], row["idx"], row["via"], tuple(json.loads(row["parents"])), row["migration"],
                        bool(row["active"]))


def members(archive: Archive, island: int | None = None, active_only: bool = True) -> list[IslandMember]:
    """Members in the order they joined; [] for archives before schema 4."""
    if archive._schema < 4:
        return []
    where = ["1=1"] + (["island = ?"] if island is not None else []) + (["active = 1"] if active_only else [])
    rows = archive._query(f"SELECT * FROM island_members WHERE {' AND '.join(where)} ORDER BY id",
                          () if island is None else (island,))
    return [_member(row) for row in rows]


def record_migration(archive: Archive, generation: int, moves: list[Move], reset_island: int | None,
                     detail: dict) -> bool:
    """Write one migration step whole; False (nothing written) when that generation's step is already there."""
    with archive._write() as db:
        if db.execute("SELECT 1 FROM migrations WHERE generation = ?", (generation,)).fetchone():
            return False
        if reset_island is not None:
            db.execute("UPDATE island_members SET active = 0 WHERE island = ?", (reset_island,))
        for move in moves:
            db.execute("INSERT INTO island_members (island, idx, via, migration) VALUES (?, ?, ?, ?)",
                       (move.island, move.index, move.via, generation))
        db.execute("INSERT INTO migrations (generation, at, detail) VALUES (?, ?, ?)",
                   (generation, time.time(), json.dumps(detail)))
    return True


def migrations(archive: Archive) -> dict[int, dict]:
    """Generation -> what its migration step did."""
    if archive._schema < 4:
        return {}
    return {row["generation"]: json.loads(row["detail"])
            for row in archive._query("SELECT generation, detail FROM migrations ORDER BY generation")}
