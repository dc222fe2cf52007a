"""Loss shapes: a preference loss as a function f(x) of x = β·ρ, and its derivative f′(x).

f is measured by calling the loss itself with the reference terms zero and the policy log-probs split evenly,
chosen = ρ/2 and rejected = −ρ/2 with ρ = x/β, so β·ρ = x; f′ comes from autograd. A whole panel's grid is
one batch. Losses that use batch statistics (mean, std over the pairs) then show their shape for a batch spread evenly
over the panel, and f′ is the per-pair derivative ∂f_i/∂x_i.

This module holds the records and the launcher, and imports no torch; the computation is in
``llm2.report.shape_worker``. Candidate code is untrusted: ``shapes_from_code`` computes its shapes in a child
process with a time limit (``python -m llm2.report.shape_worker`` reading JSON on stdin), never in the caller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Sequence

# The two default panels: the tails, and the fine structure near 0 (DiscoPOP's extrema sit near ±0.1).
WIDE = (-10.0, 10.0)
ZOOM = (-0.5, 0.5)
POINTS = 401


@dataclass(frozen=True)
class ShapePanel:
    x: tuple[float, ...]
    f: tuple[float, ...]
    df: tuple[float, ...]


@dataclass(frozen=True)
class LossShape:
    name: str
    panels: tuple[ShapePanel, ...]  # one per x range asked for, in order; empty when error is set
    batch_dependent: bool = False
    error: str | None = None


def shapes_from_code(items: Sequence[tuple[str, str]], beta: float,
                     ranges: Sequence[tuple[float, float]] = (WIDE, ZOOM), points: int = POINTS,
                     timeout_s: float = 60.0) -> list[LossShape]:
    """Shapes of (name, code) losses, computed in a confined child process; a timeout fails every shape."""
    request = {"items": [list(item) for item in items], "beta": beta, "ranges": [list(r) for r in ranges],
               "points": points, "timeout_s": timeout_s}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        with tempfile.TemporaryDirectory(prefix="llm2-shapes-") as scratch:
            done = subprocess.run([sys.executable, "-m", "llm2.report.shape_worker"], input=json.dumps(request),
                                  capture_output=True, text=True, timeout=timeout_s, env=env, cwd=scratch)
    except subprocess.TimeoutExpired:
        return [LossShape(name, (), error=f"timed out after {timeout_s:g} s") for name, _ in items]
    if done.returncode != 0:
        last_line = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [LossShape(name, (), error=f"shape worker exited with {done.returncode}: {last_line}")
                for name, _ in items]
    return [shape_from_dict(d) for d in json.loads(done.stdout)]


def shape_from_dict(data: dict) -> LossShape:
    panels = tuple(ShapePanel(tuple(p["x"]), tuple(p["f"]), tuple(p["df"])) for p in data["panels"])
    return LossShape(data["name"], panels, data["batch_dependent"], data["error"])
