"""Behavioural duplicates: a candidate whose fingerprint (the task's, computed in the confined child) matches an
earlier candidate's within the task's tolerance is recorded as a duplicate of it and is not trained; it is given that
candidate's score and the proposer is told which candidate it re-invented. Near-duplicates (close, not within the
tolerance) are evaluated like any other candidate.
"""

from __future__ import annotations

from llm2.archive import Archive, CandidateRecord
from llm2.archive.search_tables import behaviour_duplicates, fingerprints, record_fingerprint


def same_behaviour(a: tuple[float, ...], b: tuple[float, ...], tolerance: float) -> bool:
    """Equal within ``tolerance`` in every entry (fingerprints of unequal length never match)."""
    return len(a) == len(b) > 0 and max(abs(x - y) for x, y in zip(a, b)) <= tolerance


def settle_fingerprint(archive: Archive, candidate: CandidateRecord, vector: tuple[float, ...],
                       tolerance: float) -> CandidateRecord | None:
    """Record the candidate's fingerprint; the earlier candidate it behaves like, or None (it is then evaluated).

    Baselines are always evaluated (their fingerprints are recorded so proposals can match them); an empty
    fingerprint (the task could not take one) matches nothing.
    """
    original_id = None
    if vector and candidate.generation > 0:
        original_id = next((f.candidate_id for f in fingerprints(archive) if f.same_as is None
                            and f.candidate_id != candidate.id and same_behaviour(f.vector, vector, tolerance)), None)
    if vector:
        record_fingerprint(archive, candidate.id, vector, original_id)
    if original_id is None:
        return None
    archive.mark_duplicate(candidate.id, original_id)
    return archive.candidate(original_id)


def is_behaviour_duplicate(archive: Archive, candidate_id: int) -> bool:
    return candidate_id in behaviour_duplicates(archive)
