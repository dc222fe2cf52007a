"""The picture of the latest candidate's training curves, for a proposer that accepts images, and what it costs.

The request's last user message carries the feedback of the candidate that finished last in the conversation; its
curves (first training seed, as the archive kept them) are drawn by trusted code (``llm2.curves_image``) and sent
beside those words. Only one picture a request: the words about earlier candidates stay words, so the prompt's
size does not grow with the run.

A picture costs the server prompt tokens too. ``image_tokens`` estimates them from the pixel size by the tile rule
common to OpenAI-compatible vision servers (OpenAI's "high detail": the image is fitted within 2048 x 2048, then
its shorter side brought down to 768; each 512 x 512 tile costs 170 tokens, plus 85 for the image), unless the
proposer says how many its server counts (its ``image_tokens`` option).
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any

from llm2.archive import Archive
from llm2.archive.search_tables import curves
from llm2.curves_image import curves_png
from llm2.proposers.base import Image

BASE_TOKENS = 85  # every image, whatever its size
TILE_TOKENS = 170  # each 512 x 512 tile
TILE_PIXELS = 512
LONGEST_SIDE = 2048  # fitted within this square first
SHORTEST_SIDE = 768  # then the shorter side brought down to this (never up)


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


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header (its IHDR chunk); (0, 0) when the bytes are no PNG."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        return 0, 0
    return struct.unpack(">II", png[16:24])


def image_tokens(png: bytes, per_image: int | None = None) -> int:
    """The prompt tokens one picture costs: ``per_image`` when the proposer states it, else the tile estimate."""
    if per_image is not None:
        return per_image
    width, height = png_size(png)
    if not width or not height:
        return BASE_TOKENS
    scale = min(1.0, LONGEST_SIDE / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, SHORTEST_SIDE / min(width, height))
    width, height = width * scale, height * scale
    return BASE_TOKENS + TILE_TOKENS * math.ceil(width / TILE_PIXELS) * math.ceil(height / TILE_PIXELS)


def images_tokens(images: tuple[Image, ...], per_image: int | None = None) -> int:
    return sum(image_tokens(image.png, per_image) for image in images)


def image_record(image: Image, per_image: int | None = None) -> dict:
    """A picture as the archive keeps it with its request: what it shows, which bytes (not the pixels) and the
    prompt tokens it counts for."""
    return {"caption": image.caption, "bytes": len(image.png), "sha256": hashlib.sha256(image.png).hexdigest(),
            "tokens": image_tokens(image.png, per_image)}
