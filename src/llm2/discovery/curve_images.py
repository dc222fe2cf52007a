"""The picture of the latest candidate's training curves, for a proposer that accepts images.

The request's last user message carries the feedback of the candidate that finished last in the conversation; its
curves (first training seed, as the archive kept them) are drawn by trusted code (``llm2.curves_image``) and sent
beside those words. Only one picture a request: the words about earlier candidates stay words, so the prompt's
size does not grow with the run.
"""

from __future__ import annotations

from typing import Any

from llm2.archive import Archive
from llm2.archive.search_tables import curves
from llm2.curves_image import curves_png
from llm2.proposers.base import Image


def latest_curve_images(view: Any, archive: Archive, proposer: Any) -> tuple[Image, ...]:
    """``view``: what the proposer is shown (the archive, or an island's view of it)."""
    if not getattr(proposer, "accepts_images", False):
        return ()
    turns = [m for m in view.messages() if m.candidate_id is not None]
    if not turns or turns[-1].role != "user":  # the conversation does not end on a candidate's feedback
        return ()
    candidate = archive.candidate(turns[-1].candidate_id)
    kept = next(iter(curves(archive, candidate.id).values()), {})
    png = curves_png(kept, f"training curves of candidate {candidate.index}") if kept else b""
    if not png:
        return ()
    return (Image(png, f"the training curves of candidate {candidate.index} (first training seed)"),)
