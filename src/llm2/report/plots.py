"""The report's figures, drawn with matplotlib's Agg backend from plain records (no archive, no torch here).

Every figure labels its axes with symbols or units, has a legend, and always draws dpo as the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from llm2.report.shapes import LossShape

# Figures are made with matplotlib.figure.Figure directly, not pyplot: no global state, no GUI backend, safe in
# any thread; savefig then renders with Agg.

REFERENCE = "dpo"
REFERENCE_STYLE = {"color": "black", "linewidth": 2.2, "linestyle": "--"}
DPI = 110


@dataclass(frozen=True)
class CandidatePoint:
    """One candidate of the discovery, for the discovery curve."""

    name: str
    generation: int
    fitness: float | None  # None when it produced no score
    status: str
    stage: str | None


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


LABEL_LENGTH = 48


def plain(text: str, limit: int = LABEL_LENGTH) -> str:
    """Untrusted text as a matplotlib label: '$' would start mathtext (and bad mathtext raises), long names cut."""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def palette() -> list:
    return list(matplotlib.colormaps["tab10"].colors)


def failure_label(point: CandidatePoint) -> str:
    return plain(point.status if point.stage in (None, "done") else f"{point.status} at {point.stage}")


def has_fitness(point: CandidatePoint) -> bool:
    return point.fitness is not None and math.isfinite(point.fitness)


def plot_discovery_curve(points: Sequence[CandidatePoint], baselines: dict[str, float], path: Path,
                         title: str = "Discovery curve") -> Path:
    return save(discovery_curve_figure(points, baselines, title), path)


def discovery_curve_figure(points: Sequence[CandidatePoint], baselines: dict[str, float],
                           title: str = "Discovery curve") -> Figure:
    """Fitness of every candidate by generation, the best so far, baseline levels, and failures by reason."""
    scored = [p for p in points if has_fitness(p)]
    failed = [p for p in points if not has_fitness(p) and p.status not in ("pending", "duplicate")]
    reasons = sorted({failure_label(p) for p in failed})
    fig = Figure(figsize=(9, 6.2 if reasons else 4.6))
    if reasons:
        top, bottom = fig.subplots(2, 1, sharex=True,
                                   gridspec_kw={"height_ratios": [4, len(reasons) * 0.45 + 0.4]})
    else:  # nothing failed: one panel, and the axis below the fitness is the generation axis
        top = bottom = fig.subplots()
    rng = np.random.default_rng(0)  # jitter only spreads candidates of one generation apart
    if scored:
        jitter = rng.uniform(-0.18, 0.18, len(scored))
        top.scatter([p.generation + j for p, j in zip(scored, jitter)], [p.fitness for p in scored], s=22,
                    color="tab:blue", alpha=0.75, label="candidate", zorder=3)
        # One level per generation band [g − ½, g + ½]: the best fitness seen up to the end of generation g.
        generations = sorted({p.generation for p in scored})
        best_y, best = [], -math.inf
        for generation in generations:
            best = max([best] + [p.fitness for p in scored if p.generation == generation])
            best_y.append(best)
        top.step([g - 0.5 for g in generations] + [generations[-1] + 0.5], best_y + best_y[-1:], where="post",
                 color="tab:red", linewidth=2, label="best so far", zorder=4)
    colors = iter([c for i, c in enumerate(palette()) if i not in (0, 3)])  # blue and red mean candidates
    for name, level in sorted(baselines.items(), key=lambda item: item[0] != REFERENCE):
        if level is None or not math.isfinite(level):
            continue
        style = REFERENCE_STYLE if name == REFERENCE else {"color": next(colors), "linewidth": 1, "linestyle": ":"}
        top.axhline(level, label=f"{plain(name)} (baseline) {level:.3f}", **style)
    if REFERENCE not in baselines:
        top.plot([], [], label="dpo: not measured in this run", **REFERENCE_STYLE)
    top.set_ylabel("fitness (mean gold reward)")
    top.set_title(plain(title, 120))
    top.grid(alpha=0.3)
    top.legend(loc="best", fontsize=8)
    if not scored:
        top.text(0.5, 0.5, "no scored candidate yet", transform=top.transAxes, ha="center", va="center")
    if reasons:
        markers = iter("xsv^D<>P*")
        tick_labels = []
        for row, reason in enumerate(reasons):
            members = [p for p in failed if failure_label(p) == reason]
            jitter = rng.uniform(-0.18, 0.18, len(members))
            bottom.scatter([p.generation + j for p, j in zip(members, jitter)], [row] * len(members),
                           marker=next(markers, "x"), color="tab:gray", s=30)
            tick_labels.append(f"{reason} ({len(members)})")
        bottom.set_yticks(range(len(reasons)), tick_labels, fontsize=8)
        bottom.set_ylim(-0.7, len(reasons) - 0.3)
        bottom.set_title("rejected or failed candidates, by reason", fontsize=9)
        bottom.grid(alpha=0.3, axis="x")
    bottom.set_xlabel("generation")
    generations = sorted({p.generation for p in points}) or [0]
    bottom.set_xticks(generations if len(generations) <= 30 else generations[:: max(1, len(generations) // 15)])
    return fig


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
                  title: str = "Reward–KL frontier") -> Path:
    return save(frontier_figure(series, reference_point, title), path)


def frontier_figure(series: Sequence[FrontierSeries], reference_point: FrontierPoint | None = None,
                    title: str = "Reward–KL frontier") -> Figure:
    """Mean gold reward against KL(π‖π_ref), one line per objective through its β values."""
    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    colors = iter(palette())
    ordered = sorted(series, key=lambda s: s.name != REFERENCE)
    label_offsets = [(4, 4), (4, -11), (-36, 4), (-36, -11)]  # per series, so coinciding points stay legible
    for number, s in enumerate(ordered):
        points = sorted(s.points, key=lambda p: p.beta)
        if not points:
            continue
        style = dict(REFERENCE_STYLE) if s.name == REFERENCE else {"color": next(colors), "linewidth": 1.5}
        ax.errorbar([p.kl for p in points], [p.reward for p in points],
                    xerr=[p.kl_std or 0.0 for p in points], yerr=[p.reward_std or 0.0 for p in points],
                    marker="o", markersize=5, capsize=2, label=plain(s.name), zorder=5 if s.name == REFERENCE else 3,
                    **style)
        for p in points:
            ax.annotate(f"β={p.beta:g}", (p.kl, p.reward), textcoords="offset points",
                        xytext=label_offsets[number % len(label_offsets)],
                        fontsize=7, color=style["color"])
    if not any(s.name == REFERENCE for s in series):
        ax.plot([], [], label="dpo: no points in this data", **REFERENCE_STYLE)
    if reference_point is not None:
        ax.scatter([reference_point.kl], [reference_point.reward], marker="*", s=160, color="tab:gray",
                   label="reference policy π_ref", zorder=6)
    ax.set_xlabel("KL(π‖π_ref) in nats")
    ax.set_ylabel("mean gold reward")
    ax.set_title(title + " (upper left is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_failures(counts: dict[str, dict[str, int]], path: Path, title: str = "Candidates by outcome") -> Path:
    return save(failures_figure(counts, title), path)


def failures_figure(counts: dict[str, dict[str, int]], title: str = "Candidates by outcome") -> Figure:
    """Stacked bars: for each stage where candidates stopped, how many ended in each status."""
    stages = list(counts)
    statuses = sorted({status for per_stage in counts.values() for status in per_stage})
    fig = Figure(figsize=(8, 0.5 * max(3, len(stages)) + 1.2))
    ax = fig.subplots()
    colors = {"ok": "tab:green", "invalid": "tab:orange", "failed": "tab:red", "timeout": "tab:purple",
              "duplicate": "tab:gray", "pending": "tab:blue", "baseline": "black"}
    left = np.zeros(len(stages))
    for status in statuses:
        widths = np.array([counts[stage].get(status, 0) for stage in stages], dtype=float)
        ax.barh(stages, widths, left=left, label=status, color=colors.get(status))
        left += widths
    for y, total in enumerate(left):
        ax.text(total, y, f" {int(total)}", va="center", fontsize=8)
    ax.set_xlim(0, max(left.max(initial=0) * 1.08, 1))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of candidates")
    ax.set_ylabel("stage reached")
    ax.set_title(title)
    ax.invert_yaxis()
    ax.grid(alpha=0.3, axis="x")
    if statuses:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), title="status")
    return fig
