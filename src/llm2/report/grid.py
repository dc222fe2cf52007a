"""The MAP-Elites grid of a ``--map-elites`` run: one square per cell of the task's first two behaviour axes,
coloured by the fitness of the cell's elite; empty cells stay blank. More axes are folded onto the first two (a
square shows the best of the cells it covers)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure as MplFigure

from llm2.archive.elites import Elite
from llm2.report.figures import Figure
from llm2.report.plots import plain, save
from llm2.task_api.base import Descriptor


def _tick_labels(descriptor: Descriptor) -> list[str]:
    edges = [f"{e:g}" for e in descriptor.edges]
    return [f"< {edges[0]}"] + [f"{a}–{b}" for a, b in zip(edges, edges[1:])] + [f"≥ {edges[-1]}"]


def elites_grid_figure(grid: Sequence[Elite], descriptors: Sequence[Descriptor], fitness_name: str,
                       out: Path) -> Figure | None:
    """None when the grid is empty or the task names no axes."""
    if not grid or not descriptors:
        return None
    x_axis = descriptors[0]
    y_axis = descriptors[1] if len(descriptors) > 1 else Descriptor("", "", ())
    values = np.full((len(y_axis.edges) + 1, len(x_axis.edges) + 1), np.nan)
    for elite in grid:
        x, y = elite.cell[0], elite.cell[1] if len(elite.cell) > 1 else 0
        if 0 <= y < values.shape[0] and 0 <= x < values.shape[1]:
            values[y, x] = elite.fitness if np.isnan(values[y, x]) else max(values[y, x], elite.fitness)
    fig = MplFigure(figsize=(1.1 * values.shape[1] + 3, 0.8 * values.shape[0] + 2))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), origin="lower", cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label=plain(f"{fitness_name} of the cell's elite"))
    for (y, x), value in np.ndenumerate(values):
        if not np.isnan(value):
            ax.text(x, y, f"{value:.3g}", ha="center", va="center", color="white", fontsize=8)
    ax.set_xticks(range(values.shape[1]), _tick_labels(x_axis), rotation=30, ha="right")
    ax.set_xlabel(plain(x_axis.label))
    if y_axis.edges:
        ax.set_yticks(range(values.shape[0]), _tick_labels(y_axis))
        ax.set_ylabel(plain(y_axis.label))
    else:
        ax.set_yticks([])
    ax.set_title(f"MAP-Elites grid: {len(grid)} cells occupied")
    path = save(fig, out / "elites_grid.png")
    return Figure.from_png(path, "The MAP-Elites grid",
                           "The best candidate of each behaviour cell (the task's descriptors, binned), coloured "
                           f"and labelled by its {fitness_name}; blank cells no evaluated proposal reached.")
