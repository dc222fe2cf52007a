"""One candidate's training curves drawn as a PNG, for a proposer that accepts images.

Drawn in the trusted main process from the numbers the archive kept (already cleaned by ``llm2.curves``), never by
candidate code. Small on purpose: a vision model reads shapes (a loss that turns, a margin that runs off), not
fine detail, and every image costs prompt tokens.
"""

from __future__ import annotations

import io
import math

from matplotlib.figure import Figure

X_AXIS = "step"  # a curve of that name, when the task sends one, is the x axis of the others
PANEL_INCHES = (2.6, 2.2)
DPI = 80  # about 210 x 180 pixels a panel


def curves_png(curves: dict[str, list[float]], title: str) -> bytes:
    """One panel per curve (the ``step`` curve is the x axis); empty bytes when there is nothing to draw."""
    names = [name for name, values in curves.items() if name != X_AXIS and any(math.isfinite(v) for v in values)]
    if not names:
        return b""
    figure = Figure(figsize=(PANEL_INCHES[0] * len(names), PANEL_INCHES[1]), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    steps = curves.get(X_AXIS)
    for ax, name in zip(axes, names):
        values = curves[name]
        xs = steps[:len(values)] if steps and len(steps) >= len(values) else list(range(len(values)))
        ax.plot(xs, values, marker=".", markersize=3)
        ax.set_title(name.replace("_", " "), fontsize="small")
        ax.set_xlabel(X_AXIS if steps else "point", fontsize="x-small")
        ax.tick_params(labelsize="x-small")
    figure.suptitle(title, fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
