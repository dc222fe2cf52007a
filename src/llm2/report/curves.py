"""The training curves the task handed back (first training seed), one panel per curve, for the best candidates and
the reference baseline: how training went, not only where it ended."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure as PlotFigure

from llm2.archive import Archive, CandidateRecord
from llm2.archive.search_tables import curves
from llm2.report.figures import Figure
from llm2.report.plots import DPI, REFERENCE_STYLE, plain

X_AXIS = "step"  # a curve of that name, when the task sends one, is the x axis of the others


def training_curves_figure(run_dir: Path, shown: Sequence[CandidateRecord], reference: CandidateRecord | None,
                           out: Path) -> Figure | None:
    """None when no shown candidate has curves (a task that records none, or a run from before schema 3)."""
    chosen = [*shown, *([reference] if reference is not None and reference not in shown else [])]
    with Archive.open(run_dir, readonly=True) as archive:
        kept = {c.id: next(iter(curves(archive, c.id).values()), {}) for c in chosen}
    drawn = [c for c in chosen if kept[c.id]]
    if not drawn:
        return None
    names = sorted({name for c in drawn for name in kept[c.id] if name != X_AXIS})
    figure = PlotFigure(figsize=(4.2 * len(names), 3.4), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for candidate in drawn:
            values = kept[candidate.id].get(name)
            if not values:
                continue
            steps = kept[candidate.id].get(X_AXIS) or list(range(len(values)))
            style = REFERENCE_STYLE if candidate is reference else {}
            ax.plot(steps[:len(values)], values, label=plain(candidate.name), **style)
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel(X_AXIS if any(X_AXIS in kept[c.id] for c in drawn) else "point")
    axes[0].legend(fontsize="small")
    path = out / "training_curves.png"
    figure.savefig(path)
    return Figure.from_png(path, "Training curves of the best candidates",
                           "The curves the task recorded while training each candidate (first training seed), one "
                           "panel per curve; the reference baseline dashed black.")
