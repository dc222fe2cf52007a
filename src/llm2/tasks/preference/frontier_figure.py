"""The report's frontier figure once ``llm2 heldout`` has traced the reference's frontier: the figure and its
sentences come from one computation (``llm2.frontier``: the same envelopes and the same verdicts ``llm2 heldout``
prints), so they cannot disagree.

One panel per gain of the task's trade-off. The figure shows one world (the non-knob settings with the most
held-out settings of the best candidates) and seed 0; the sentences are the verdicts over every held-out setting.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from matplotlib.figure import Figure as MplFigure

from llm2.frontier import envelope_for, frontier_verdicts
from llm2.points import PointIndex, point_value, settings_key
from llm2.report.figures import Figure, FigureContext, MissingFigure
from llm2.report.plots import REFERENCE_STYLE, palette, plain, save

TOP_FRONTIER = 6  # candidates placed besides the reference


def frontier_verdict_figure(task: Any, context: FigureContext) -> Figure | MissingFigure:
    trade_off, reference = task.trade_off, task.reference_baseline
    title = f"Where the best candidates sit against {reference}'s frontier"
    index = PointIndex(context.evaluations)
    names = [c.name for c in context.best if index.heldout_settings(c.name)][:TOP_FRONTIER]
    if not names:
        return MissingFigure(title, f"No candidate has held-out points yet: run `llm2 heldout {context.run_dir}`.")
    held_out = task.heldout_settings(context.settings)  # what the held-out points were scored on, as llm2 heldout
    fitness_name = task.texts_for(held_out[0] if held_out else context.settings).fitness_name  # names it
    labels = {"fitness": fitness_name, **{c.key: c.label for c in task.metric_columns}}
    verdicts = {name: frontier_verdicts(index, trade_off, name, reference, labels) for name in names}
    knobs = [k.name for k in trade_off.knobs] + ["budget", "seed"]
    worlds = Counter(settings_key(s.label, knobs) for name in names for s in index.heldout_settings(name))
    world = worlds.most_common(1)[0][0]
    figure = MplFigure(figsize=(6.5 * len(trade_off.gains), 5.2))
    axes = figure.subplots(1, len(trade_off.gains), squeeze=False)[0]
    for ax, gain in zip(axes, trade_off.gains):
        _panel(ax, index, trade_off, reference, names, world, gain, labels.get(gain, gain))
    figure.suptitle(plain(title, 120) + f" (one world, seed 0; {trade_off.knobs_text()})", fontsize=11)
    figure.tight_layout()
    path = save(figure, context.out_dir / "frontier.png")
    sentences = [f"{name}: {verdicts[name][0].text}" for name in names]
    sentences += [f"{name}, {v.gain_label}: {v.word}" for name in names for v in verdicts[name][1:]]
    caption = (f"{labels.get(trade_off.gains[0], trade_off.gains[0])} and the other gains against "
               f"{trade_off.cost_label}. Black: {reference}'s frontier, the best it reaches at no more cost over the "
               f"sweep of {trade_off.knobs_text()} and its untrained start (grey points: every sweep point). Coloured: "
               "each candidate's held-out points in this world. A candidate is above the frontier only when the "
               "interval of its mean gap over held-out settings excludes zero (docs/verdicts.md).")
    return Figure.from_png(path, title, caption, ". ".join(sentences) + ".")


def _panel(ax: Any, index: PointIndex, trade_off: Any, reference: str, names: list[str], world: str, gain: str,
           gain_label: str) -> None:
    knobs = [k.name for k in trade_off.knobs] + ["budget", "seed"]
    in_world = [s for name in names for s in index.heldout_settings(name) if settings_key(s.label, knobs) == world]
    if in_world:
        envelope = envelope_for(index, reference, in_world[0].label, 0, trade_off, gain)
        cloud = [(point_value(r, trade_off.cost), point_value(r, gain)) for r in index.of(reference)
                 if settings_key(r.setting, knobs) == world and int(r.setting.get("seed", 0)) == 0]
        cloud = [(c, g) for c, g in cloud if c is not None and g is not None]
        ax.scatter([c for c, _ in cloud], [g for _, g in cloud], color="tab:gray", s=14, alpha=0.6, zorder=2)
        ax.plot([p.cost for p in envelope.points], [p.gain for p in envelope.points], marker="o", markersize=4,
                label=f"{plain(reference)} frontier", zorder=4, **REFERENCE_STYLE)
    for name, color in zip(names, palette()):
        points = []
        for setting in index.heldout_settings(name):
            if settings_key(setting.label, knobs) == world:
                record = index.get(name, {**setting.label, "seed": 0})
                cost, value = point_value(record, trade_off.cost), point_value(record, gain)
                if cost is not None and value is not None:
                    points.append((cost, value))
        ax.scatter([c for c, _ in points], [g for _, g in points], color=color, s=36, label=plain(name), zorder=5)
    if in_world and envelope.points:  # past its dearest point the frontier stays at its best (llm2.frontier)
        right = max([envelope.points[-1].cost, *ax.get_xlim()[1:]])
        ax.plot([envelope.points[-1].cost, right], [envelope.points[-1].gain] * 2, color="black", linewidth=1.2,
                linestyle=":", zorder=4)
    ax.set_xlabel(trade_off.cost_label)
    ax.set_ylabel(gain_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
