"""Clusters of behavioural near-duplicates for the report: candidates whose fingerprints (the task's, recorded by
the run) lie within the task's ``cluster_radius`` of a cluster's first member.

Exact duplicates (within the task's much smaller ``fingerprint_tolerance``) were never trained; near-duplicates were
evaluated like any other candidate, and a cluster shows how much of the run went to variations of one behaviour.
Leader clustering in order of fitness (best first, then the unscored in proposal order): each candidate joins the
first cluster whose leader is within the radius (Euclidean distance), else starts its own. Task-neutral: it reads
only fingerprints, fitness and names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from llm2.archive import Archive, CandidateRecord
from llm2.archive.search_tables import fingerprints


@dataclass(frozen=True)
class Member:
    candidate: CandidateRecord
    distance: float  # from the cluster's leader (0 for the leader)
    duplicate: bool  # a behavioural duplicate: not trained, given its original's score


@dataclass(frozen=True)
class Clusters:
    radius: float
    fingerprinted: int  # candidates with a fingerprint
    groups: tuple[tuple[Member, ...], ...]  # clusters of two or more, the leader first, best leaders first


def behaviour_clusters(candidates: Sequence[CandidateRecord], vectors: dict[int, tuple[float, ...]],
                       duplicates: set[int], radius: float) -> Clusters:
    chosen = [c for c in candidates if vectors.get(c.id)]
    order = sorted(chosen, key=lambda c: (c.fitness is None, -(c.fitness or 0.0), c.index))
    groups: list[list[Member]] = []
    for candidate in order:
        vector = vectors[candidate.id]
        home = next((g for g in groups if _distance(vectors[g[0].candidate.id], vector) <= radius), None)
        if home is None:
            groups.append([Member(candidate, 0.0, candidate.id in duplicates)])
        else:
            home.append(Member(candidate, _distance(vectors[home[0].candidate.id], vector),
                               candidate.id in duplicates))
    return Clusters(radius, len(chosen), tuple(tuple(g) for g in groups if len(g) > 1))


def run_clusters(run_dir: Path, candidates: Sequence[CandidateRecord], radius: float) -> Clusters:
    with Archive.open(run_dir, readonly=True) as archive:
        prints = fingerprints(archive)
    vectors = {f.candidate_id: f.vector for f in prints}
    return behaviour_clusters(candidates, vectors, {f.candidate_id for f in prints if f.same_as is not None}, radius)


def _distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return math.dist(a, b) if len(a) == len(b) else math.inf


def clusters_html(clusters: Clusters, esc, number) -> str:
    """``esc`` escapes untrusted text for HTML, ``number`` writes a fitness (the page's own helpers)."""
    if not clusters.fingerprinted:
        return ("<p class=\"note\">No behavioural fingerprints in this run (the task takes none, or the run had "
                "them off).</p>")
    intro = (f"<p>Candidates whose behavioural fingerprints lie within {clusters.radius:g} of the cluster's best "
             f"member (Euclidean distance, the task's cluster radius): {len(clusters.groups)} "
             f"cluster{'s' * (len(clusters.groups) != 1)} of two or more among {clusters.fingerprinted} "
             "fingerprinted candidates. A behavioural duplicate was not trained; the others were evaluated.</p>")
    if not clusters.groups:
        return intro
    tables = []
    for number_, group in enumerate(clusters.groups, start=1):
        rows = "".join(
            f"<tr><td class=\"number\">{m.candidate.index}</td><td>{esc(m.candidate.name)}"
            f"{' (baseline)' if m.candidate.is_baseline else ''}</td><td class=\"number\">"
            f"{number(m.candidate.fitness)}</td><td>{esc(_status(m))}</td><td class=\"number\">{m.distance:.3g}</td>"
            "</tr>" for m in group)
        tables.append(f"<h3>Cluster {number_}: {len(group)} candidates around {esc(group[0].candidate.name)}</h3>"
                      "<table class=\"clusters\"><tr><th class=\"number\">#</th><th>name</th><th class=\"number\">"
                      "fitness</th><th>status</th><th class=\"number\">distance</th></tr>" + rows + "</table>")
    return intro + "".join(tables)


def _status(member: Member) -> str:
    return "behavioural duplicate" if member.duplicate else member.candidate.status
