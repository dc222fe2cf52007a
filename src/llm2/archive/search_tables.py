"""What the search keeps beside each candidate (schema 3): its behavioural fingerprint, which earlier candidate a
behavioural duplicate behaves like, and the task's small training curves per seed.

Kept apart from ``store.py`` so that the store stays one screen per job; these functions use its transactions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from llm2.archive.store import Archive


@dataclass(frozen=True)
class FingerprintRecord:
    candidate_id: int
    vector: tuple[float, ...]
    same_as: int | None  # the earlier candidate it behaves like (a behavioural duplicate), or None


def record_fingerprint(archive: Archive, candidate_id: int, vector: tuple[float, ...], same_as: int | None) -> None:
    with archive._write() as db:
        db.execute("INSERT OR REPLACE INTO fingerprints (candidate_id, vector, same_as) VALUES (?, ?, ?)",
                   (candidate_id, json.dumps(list(vector)), same_as))


def fingerprints(archive: Archive) -> list[FingerprintRecord]:
    """Every recorded fingerprint, in the order the candidates were proposed; [] for archives before schema 3."""
    if archive._schema < 3:
        return []
    rows = archive._query("SELECT f.* FROM fingerprints f JOIN candidates c ON c.id = f.candidate_id ORDER BY c.idx")
    return [FingerprintRecord(row["candidate_id"], tuple(json.loads(row["vector"])), row["same_as"]) for row in rows]


def behaviour_duplicates(archive: Archive) -> dict[int, int]:
    """Behavioural duplicate -> the candidate it behaves like."""
    return {f.candidate_id: f.same_as for f in fingerprints(archive) if f.same_as is not None}


def record_curves(archive: Archive, candidate_id: int, seed: int, curves: dict[str, list[float]]) -> None:
    with archive._write() as db:
        db.execute("INSERT OR REPLACE INTO curves (candidate_id, seed, curves) VALUES (?, ?, ?)",
                   (candidate_id, seed, json.dumps(curves)))


def curves(archive: Archive, candidate_id: int) -> dict[int, dict[str, list[float]]]:
    """Seed -> the task's curves (name -> values) for one candidate; {} when none were kept."""
    if archive._schema < 3:
        return {}
    rows = archive._query("SELECT seed, curves FROM curves WHERE candidate_id = ? ORDER BY seed", (candidate_id,))
    return {row["seed"]: json.loads(row["curves"]) for row in rows}
