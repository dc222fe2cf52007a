"""The report's own figures, drawn with matplotlib's Agg backend from plain records (no archive, no torch here),
and the drawing helpers tasks use for theirs.

Every figure labels its axes with symbols or units, has a legend, and draws the task's reference baseline in black
dashes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# Figures are made with matplotlib.figure.Figure directly, not pyplot: no global state, no GUI backend, safe in
# any thread; savefig then renders with Agg.

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
                         reference: str, fitness_name: str, title: str = "Discovery curve") -> Path:
    return save(discovery_curve_figure(points, baselines, reference, fitness_name, title), path)


def discovery_curve_figure(points: Sequence[CandidatePoint], baselines: dict[str, float], reference: str,
                           fitness_name: str, title: str = "Discovery curve") -> Figure:
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
    for name, level in sorted(baselines.items(), key=lambda item: item[0] != reference):
        if level is None or not math.isfinite(level):
            continue
        style = REFERENCE_STYLE if name == reference else {"color": next(colors), "linewidth": 1, "linestyle": ":"}
        top.axhline(level, label=f"{plain(name)} (baseline) {level:.3f}", **style)
    if reference not in baselines:
        top.plot([], [], label=f"{plain(reference)}: not measured in this run", **REFERENCE_STYLE)
    top.set_ylabel(f"fitness ({plain(fitness_name)})")
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
