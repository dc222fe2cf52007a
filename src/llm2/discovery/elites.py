"""MAP-Elites (``--map-elites``): parents drawn across the cells of the task's behaviour grid, not only by fitness.

The task names the axes (``Task.descriptors``: a recorded metric and its bin edges each); a candidate's cell is its
bin on every axis, and the archive keeps the best candidate of each cell (``llm2.archive.elites``). Before each
proposal the grid takes in every evaluated candidate (offering one twice changes nothing, so a resumed run has the
same grid), and the parents are the elites of distinct occupied cells drawn at random (seeded by the run's seed and
the proposal's index), so a niche with a weak best still gets shown.
"""

from __future__ import annotations

import bisect
import math
import random
from typing import Sequence

from llm2.archive import Archive, CandidateRecord
from llm2.archive.elites import Elite, elites, offer
from llm2.task_api.base import Descriptor


def cell_of(metrics: dict, descriptors: Sequence[Descriptor]) -> tuple[int, ...] | None:
    """The candidate's bin on each axis; None when a metric is missing or not a finite number."""
    cell = []
    for descriptor in descriptors:
        value = metrics.get(descriptor.key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return None
        cell.append(bisect.bisect_right(descriptor.edges, value))
    return tuple(cell)


def update(archive: Archive, candidates: Sequence[CandidateRecord], descriptors: Sequence[Descriptor]
           ) -> list[Elite]:
    """Offer every evaluated proposal to its cell; the grid after. Only a cell's best newcomer that beats the
    resident is written (one small transaction each), so a long run does not rewrite the grid per proposal."""
    best = {e.cell: (e.fitness, -e.candidate_id) for e in elites(archive)}
    newcomers: dict[tuple[int, ...], CandidateRecord] = {}
    for c in candidates:
        if c.generation > 0 and c.status == "ok" and c.fitness is not None:
            cell = cell_of(c.metrics, descriptors)
            if cell is not None and (c.fitness, -c.id) > best.get(cell, (-math.inf, 0)):
                best[cell], newcomers[cell] = (c.fitness, -c.id), c
    for cell, c in newcomers.items():
        offer(archive, cell, c.id, c.fitness)
    return elites(archive)


def choose_parents(grid: Sequence[Elite], candidates: Sequence[CandidateRecord], count: int, seed: int
                   ) -> tuple[CandidateRecord, ...]:
    """The elites of ``count`` distinct occupied cells, drawn uniformly with ``seed``; only cells whose elite is
    among ``candidates`` (an island's own members, say) count."""
    by_id = {c.id: c for c in candidates}
    cells = [e for e in grid if e.candidate_id in by_id]
    drawn = random.Random(seed).sample(cells, min(count, len(cells)))
    return tuple(by_id[e.candidate_id] for e in drawn)
