"""The preference tasks' figures: loss shapes f(x), f′(x) over x = β·ρ, and the reward–KL frontier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from llm2.report.plots import REFERENCE_STYLE, palette, plain, save
from llm2.tasks.preference.shapes import LossShape

REFERENCE = "dpo"


@dataclass(frozen=True)
class FrontierPoint:
    beta: float
    reward: float
    kl: float
    reward_std: float | None = None
    kl_std: float | None = None


@dataclass(frozen=True)
class FrontierSeries:
    name: str
    points: tuple[FrontierPoint, ...]


OFF_SCALE_FACTOR = 8.0  # a curve whose span exceeds this many dpo spans is clipped rather than squashing dpo


def shape_limits(curves: dict[str, np.ndarray], reference: np.ndarray | None) -> tuple[tuple[float, float] | None,
                                                                                         list[str]]:
    """y limits that show dpo and every curve of comparable scale in full; the names of the curves clipped."""
    def extent(y: np.ndarray) -> tuple[float, float] | None:
        finite = y[np.isfinite(y)]
        return (float(finite.min()), float(finite.max())) if finite.size else None

    extents = {name: e for name, y in curves.items() if (e := extent(y)) is not None}
    if not extents:
        return None, []
    reference_extent = extent(reference) if reference is not None else None
    if reference_extent is None:
        allowed = max(high - low for low, high in extents.values())
    else:
        allowed = OFF_SCALE_FACTOR * max(reference_extent[1] - reference_extent[0], 1e-3)
    shown = {name: e for name, e in extents.items() if e[1] - e[0] <= allowed}
    low = min(e[0] for e in shown.values())
    high = max(e[1] for e in shown.values())
    pad = 0.06 * (high - low) if high > low else 0.5
    return (low - pad, high + pad), sorted(set(extents) - set(shown))


def plot_loss_shapes(shapes: Sequence[LossShape], path: Path, beta: float, title: str = "Loss shapes") -> Path:
    return save(loss_shapes_figure(shapes, beta, title), path)


def loss_shapes_figure(shapes: Sequence[LossShape], beta: float, title: str = "Loss shapes") -> Figure:
    """f(x) and f′(x) over x = β·ρ, one column per x range; dpo drawn in black dashes."""
    drawable = [s for s in shapes if s.error is None and s.panels]
    columns = max((len(s.panels) for s in drawable), default=1)
    fig = Figure(figsize=(6.2 * columns, 7.5))
    axes = fig.subplots(2, columns, squeeze=False)
    colors = iter(palette())
    styles = {}
    for shape in drawable:
        styles[shape.name] = REFERENCE_STYLE if shape.name == REFERENCE else {"color": next(colors), "linewidth": 1.5}
    for column in range(columns):
        for row, (attribute, symbol) in enumerate((("f", "f(x)"), ("df", "f′(x) = df/dx"))):
            ax = axes[row][column]
            curves = {s.name: np.asarray(getattr(s.panels[column], attribute), dtype=float)
                      for s in drawable if column < len(s.panels)}
            limits, clipped = shape_limits(curves, curves.get(REFERENCE))
            for shape in drawable:
                if shape.name in curves:
                    ax.plot(shape.panels[column].x, curves[shape.name], zorder=5 if shape.name == REFERENCE else 3,
                            **styles[shape.name])
            if limits:
                ax.set_ylim(*limits)
            ax.axhline(0, color="gray", linewidth=0.6)
            ax.axvline(0, color="gray", linewidth=0.6)
            ax.set_xlabel("x = β·ρ")
            ax.set_ylabel(symbol)
            xs = next(s.panels[column].x for s in drawable if column < len(s.panels)) if curves else (0.0, 0.0)
            off_scale = "" if not clipped else "\noff scale (clipped): " + plain(", ".join(clipped), 80)
            ax.set_title(f"{symbol} for x ∈ [{xs[0]:g}, {xs[-1]:g}]{off_scale}", fontsize=10)
            ax.grid(alpha=0.3)
    # One legend for all panels, below them, so that no curve is hidden behind it.
    handles = [Line2D([], [], **styles[s.name]) for s in drawable]
    labels = [plain(s.name) + (" (uses batch statistics)" if s.batch_dependent else "") for s in drawable]
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(1, len(labels))), fontsize=9, frameon=False)
    missing = [s for s in shapes if s not in drawable]
    note = "" if not missing else "\nnot drawn: " + plain("; ".join(f"{s.name} ({s.error})" for s in missing), 150)
    fig.suptitle(f"{plain(title, 120)} (ρ = r_c − r_r, β = {beta:g}; reference terms 0){note}", fontsize=11)
    return fig


def plot_frontier(series: Sequence[FrontierSeries], path: Path, reference_point: FrontierPoint | None = None,
                  title: str = "Reward–KL frontier", reference: str = REFERENCE) -> Path:
    return save(frontier_figure(series, reference_point, title, reference), path)


def reference_line(series: FrontierSeries) -> list[FrontierPoint]:
    """The reference's frontier as drawn and as compared with: its points joined in order of KL (β usually orders
    them the same way; when noise does not, a line in β order would double back and read differently from the
    comparison)."""
    return sorted(series.points, key=lambda p: (p.kl, p.beta))


def frontier_figure(series: Sequence[FrontierSeries], reference_point: FrontierPoint | None = None,
                    title: str = "Reward–KL frontier", reference: str = REFERENCE) -> Figure:
    """Mean gold reward against KL(π‖π_ref), one line per objective through its β values; the reference's line
    is its frontier (its points in order of KL)."""
    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    colors = iter(palette())
    ordered = sorted(series, key=lambda s: s.name != reference)
    labels = []
    for s in ordered:
        points = reference_line(s) if s.name == reference else sorted(s.points, key=lambda p: p.beta)
        if not points:
            continue
        style = dict(REFERENCE_STYLE) if s.name == reference else {"color": next(colors), "linewidth": 1.5}
        ax.errorbar([p.kl for p in points], [p.reward for p in points],
                    xerr=[p.kl_std or 0.0 for p in points], yerr=[p.reward_std or 0.0 for p in points],
                    marker="o", markersize=5, capsize=2, label=plain(s.name), zorder=5 if s.name == reference else 3,
                    **style)
        labels += [(f"β={p.beta:g}", (p.kl, p.reward), style["color"]) for p in points]
    if not any(s.name == reference for s in series):
        ax.plot([], [], label=f"{plain(reference)}: no points in this data", **REFERENCE_STYLE)
    if reference_point is not None:
        ax.scatter([reference_point.kl], [reference_point.reward], marker="*", s=160, color="tab:gray",
                   label="reference policy π_ref", zorder=6)
    ax.set_xlabel("KL(π‖π_ref) in nats")
    ax.set_ylabel("mean gold reward")
    ax.set_title(title + " (upper left is better)")
    ax.grid(alpha=0.3)
    # the legend sits beside the axes, so that neither a point nor a β label is ever hidden behind it
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    place_labels(fig, ax, labels)
    return fig


# Offsets in points tried for a β label, nearest first, so that each label sits by its point without covering
# another label (points of several objectives often crowd at low KL).
LABEL_OFFSETS = [(dx * r, dy * r) for r in (1, 2, 3, 4, 6) for dx, dy in
                 ((4, 4), (4, -10), (-30, 4), (-30, -10), (-13, 9), (-13, -15), (8, -3), (-38, -3))]


def place_labels(fig: Figure, ax, labels: list[tuple[str, tuple[float, float], Any]]) -> None:
    """Annotate each point with its label at the first offset where it overlaps no label placed before; a label
    with no free place is left out rather than drawn over another (its β can be read from the line's order)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from matplotlib.transforms import Bbox

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)  # fixes the axes' limits and layout, so the boxes measured below are the final ones
    radius = 3 * fig.dpi / 72  # about a marker's radius in pixels: a label may not cover any point either
    centres = [ax.transData.transform(xy) for _, xy, _ in labels]
    taken = [Bbox.from_extents(x - radius, y - radius, x + radius, y + radius) for x, y in centres]
    for text, xy, color in labels:
        for offset in LABEL_OFFSETS:
            note = ax.annotate(text, xy, textcoords="offset points", xytext=offset, fontsize=7, color=color,
                               zorder=7, bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 0.5})
            box = note.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in taken) and ax.bbox.contains(box.x0, box.y0) \
                    and ax.bbox.contains(box.x1, box.y1):
                taken.append(box)
                break
            note.remove()
