"""The reward-design task's figures for ``llm2 report``, from the numbers each evaluation recorded (no candidate
code runs): success while training per tenth of training (the learning curves), and each reward term's mean
contribution per step over training, for the baselines and the best candidates."""

from __future__ import annotations

import math
from typing import Any

from llm2.report.figures import Figure, FigureContext, MissingFigure
from llm2.tasks.reward_design.ppo import PHASES

TOP = 4


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shown(task: Any, context: FigureContext) -> list[tuple[str, Any]]:
    """(label, record): the baselines, then the best candidates that are not baselines (a repeated name gets its
    number)."""
    baselines = [c for c in context.candidates if c.is_baseline and c.fitness is not None]
    best = [c for c in context.best if not c.is_baseline][:TOP]
    shown, seen = [], set()
    for record in baselines + best:
        label = record.name if record.name not in seen else f"{record.name} #{record.id}"
        seen.add(record.name)
        shown.append((label, record))
    return shown


def reward_design_figures(task: Any, context: FigureContext) -> list[Figure | MissingFigure]:
    return [learning_curves(task, context), term_contributions(task, context)]


def learning_curves(task: Any, context: FigureContext) -> Figure | MissingFigure:
    title = "Success while training"
    curves = []
    for label, record in _shown(task, context):
        points = [record.metrics.get(f"train_success_{phase}") for phase in range(PHASES)]
        points = [p if _finite(p) else math.nan for p in points]  # a tenth in which no episode ended: a gap
        if any(_finite(p) for p in points):
            curves.append((label, points, record.is_baseline))
    if not curves:
        return MissingFigure(title, "No evaluation of this run recorded its training curve yet.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    x = [(phase + 1) / PHASES for phase in range(PHASES)]
    for name, points, baseline in curves:
        axis.plot(x, points, "--" if baseline else "-", marker="o", lw=2.0 if baseline else 1.4, label=name)
    axis.set(xlabel="share of the training budget", ylabel="episodes reaching the goal", ylim=(-0.03, 1.03))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    path = context.out_dir / "reward_learning_curves.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    caption = ("The share of the training episodes ending in each tenth of training that reached the true goal "
               "(mean over seeds), for the baselines (dashed) and the best candidates; the fitness is measured "
               "afterwards, on held-out dynamics.")
    return Figure.from_png(path, title, caption)


def term_contributions(task: Any, context: FigureContext) -> Figure | MissingFigure:
    title = "Each reward term's contribution"
    rows = []
    for label, record in _shown(task, context):
        terms = {key.removeprefix("term."): value for key, value in record.metrics.items()
                 if key.startswith("term.") and not key.endswith("_std") and _finite(value)}
        if terms:
            rows.append((label, terms))
    if not rows:
        return MissingFigure(title, "No evaluation of this run recorded its reward terms yet.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.5, 0.5 + 0.45 * sum(len(t) for _, t in rows)))
    labels, values = [], []
    for name, terms in rows:
        scale = max(abs(v) for v in terms.values()) or 1.0
        for term, value in sorted(terms.items()):
            labels.append(f"{name}: {term}")
            values.append(value / scale)
    axis.barh(range(len(values)), values, color=["tab:green" if v >= 0 else "tab:red" for v in values])
    axis.set_yticks(range(len(labels)), labels, fontsize=7)
    axis.invert_yaxis()
    axis.axvline(0, color="black", lw=0.8)
    axis.set(xlabel="mean per step ÷ the reward's largest term")
    axis.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    path = context.out_dir / "reward_terms.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    caption = ("Each term's mean per step over training (mean over seeds), relative to the largest term of the "
               "same reward (training divides the sum by the return's spread, so proportions are what count).")
    return Figure.from_png(path, title, caption)
