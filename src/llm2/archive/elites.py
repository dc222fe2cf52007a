"""The MAP-Elites grid (schema 5): the best candidate of each behaviour cell, one row per occupied cell.

A cell is named by its bin indices as JSON (``"[2, 0]"``); which metrics and edges make the bins is the task's
(``Task.descriptors``), so the archive only keeps the names. ``offer`` keeps the better of the resident and the
newcomer (ties: the earlier candidate), so offering every candidate again (on resume) changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from llm2.archive.store import Archive


@dataclass(frozen=True)
class Elite:
    cell: tuple[int, ...]
    candidate_id: int
    fitness: float


def offer(archive: Archive, cell: tuple[int, ...], candidate_id: int, fitness: float) -> bool:
    """The candidate becomes the cell's elite if the cell is empty or it is better; True when it did."""
    key = json.dumps(list(cell))
    with archive._write() as db:
        row = db.execute("SELECT candidate_id, fitness FROM elites WHERE cell = ?", (key,)).fetchone()
        if row is not None and (row["fitness"], -row["candidate_id"]) >= (fitness, -candidate_id):
            return False
        db.execute("INSERT OR REPLACE INTO elites (cell, candidate_id, fitness) VALUES (?, ?, ?)",
                   (key, candidate_id, fitness))
    return True


def elites(archive: Archive) -> list[Elite]:
    """The occupied cells in cell order; [] for archives before schema 5."""
    if archive._schema < 5:
        return []
    rows = archive._query("SELECT cell, candidate_id, fitness FROM elites")
    return sorted((Elite(tuple(json.loads(r["cell"])), r["candidate_id"], r["fitness"]) for r in rows),
                  key=lambda e: e.cell)
