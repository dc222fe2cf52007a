"""The classification task's figures for ``llm2 report``: each loss as a function of the probability the network
gives the (training) label, with its derivative; and held-out accuracy against label noise per objective."""

from __future__ import annotations

import math
from collections import defaultdict
from statistics import mean, stdev
from typing import Any

from llm2.report.figures import Figure, FigureContext, MissingFigure
from llm2.tasks.classification.settings import CLASSES

GRID = [round(0.005 + 0.99 * i / 98, 6) for i in range(99)]  # p_y from 0.005 to 0.995
TOP = 4  # best candidates drawn beside the reference


def curve(fn: Any, payload: dict) -> dict:
    """Trusted entry, run in a confined process on a candidate's function: f(p) and df/dp along logits where the
    labelled class has probability p and the other classes share 1 − p equally."""
    import torch

    classes = int(payload.get("classes", CLASSES))
    p = torch.tensor([float(x) for x in payload["p"]], requires_grad=True)
    others = ((1 - p) / (classes - 1)).unsqueeze(1).expand(-1, classes - 1)
    logits = torch.log(torch.cat([p.unsqueeze(1), others], dim=1))
    losses = fn(logits, torch.zeros(len(p), dtype=torch.long))
    (gradient,) = torch.autograd.grad(losses.sum(), p)
    return {"p": p.detach().tolist(), "loss": losses.detach().tolist(), "slope": gradient.tolist()}


def classification_figures(task: Any, context: FigureContext) -> list[Figure | MissingFigure]:
    return [loss_curves(task, context), accuracy_against_noise(task, context)]


def loss_curves(task: Any, context: FigureContext) -> Figure:
    reference = task.reference_baseline
    items = [(reference, context.reference.code if context.reference else task.baselines[reference].code)]
    for candidate in list(context.best)[:TOP]:
        label = candidate.name if candidate.name not in dict(items) else f"{candidate.name} #{candidate.id}"
        items.append((label, candidate.code))
    results = context.call_confined("llm2.tasks.classification.figures:curve", items, {"p": GRID})
    drawn = [(r.name, r.value) for r in results if r.error is None and isinstance(r.value, dict)]
    path = _plot_curves(drawn, context.out_dir / "loss_curves.png", reference)
    failed = [f"{r.name}: {r.error}" for r in results if r.error is not None]
    note = ("Could not draw: " + "; ".join(failed) + ".") if failed else ""
    caption = (f"Left: each loss for one example whose labelled class gets probability p ({CLASSES} classes, the "
               "others sharing 1 − p), shifted so that f(0.995) = 0. Right: |df/dp|, how hard the loss pulls an "
               "example the network gets wrong (small p: often a wrong label under noise); cross-entropy's 1/p "
               "lets such examples dominate, robust losses bound it. Computed in a confined process.")
    return Figure.from_png(path, f"Loss f(p) and its slope for the best candidates beside {reference}", caption,
                           note)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _saved(plt, figure, grid_axes, legend_axis, path):
    """Gridded, the legend on ``legend_axis``, written to ``path`` and closed; the path."""
    for axis in grid_axes:
        axis.grid(alpha=0.3)
    legend_axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _plot_curves(curves: list[tuple[str, dict]], path, reference: str):
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, value in curves:
        p = value["p"]
        loss = [_number(v) for v in value["loss"]]
        slope = [abs(_number(v)) for v in value["slope"]]
        width, style = (2.2, "--") if name == reference else (1.4, "-")
        left.plot(p, [v - loss[-1] for v in loss], style, lw=width, label=name)
        right.plot(p, [v if v > 0 else math.nan for v in slope], style, lw=width, label=name)
    left.set(xlabel="p (probability of the labelled class)", ylabel="f(p) − f(0.995)", title="loss")
    right.set(xlabel="p (probability of the labelled class)", ylabel="|df/dp|", yscale="log", title="slope")
    return _saved(plt, figure, (left, right), left, path)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan


def accuracy_against_noise(task: Any, context: FigureContext) -> Figure | MissingFigure:
    title = "Held-out accuracy against label noise"
    settings = context.settings
    series: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in context.evaluations:
        setting = record.setting
        same_data = all(setting.get(k) == getattr(settings, k) for k in ("dataset", "data_seed", "epochs", "lr"))
        if record.status == "ok" and record.fitness is not None and same_data and "label_noise" in setting:
            series[record.candidate_name][float(setting["label_noise"])].append(float(record.fitness))
    for record in [context.reference, *context.best]:  # the discovery's own noise level
        if record is not None and record.fitness is not None and record.name in series:
            points = series[record.name]
            points.setdefault(float(settings.label_noise), []).append(float(record.fitness))
    series = {name: points for name, points in series.items() if len(points) >= 2}
    if not series:
        return MissingFigure(title, "No accuracies at several noise levels for this run yet. Produce them with "
                                    f"`llm2 heldout {context.run_dir}` (the held-out suite varies the label noise), "
                                    f"then run `llm2 report {context.run_dir}` again.")
    path = _plot_noise(series, context.out_dir / "accuracy_noise.png", task.reference_baseline)
    caption = (f"Accuracy on the clean test labels after the fixed budget, mean ± std over seeds, against the share "
               f"of training labels replaced by a random other class ({settings.dataset}, data seed "
               f"{settings.data_seed}).")
    return Figure.from_png(path, title, caption)


def _plot_noise(series: dict[str, dict[float, list[float]]], path, reference: str):
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for name, points in sorted(series.items()):
        noise = sorted(points)
        means = [mean(points[n]) for n in noise]
        errors = [stdev(points[n]) if len(points[n]) > 1 else 0.0 for n in noise]
        axis.errorbar(noise, means, yerr=errors, marker="o", capsize=3, lw=2.2 if name == reference else 1.4,
                      ls="--" if name == reference else "-", label=name)
    axis.set(xlabel="label noise", ylabel="test accuracy (clean labels)")
    return _saved(plt, figure, (axis,), axis, path)
