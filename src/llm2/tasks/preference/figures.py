"""The preference tasks' figures for ``llm2 report``: loss shapes of the best candidates beside the reference, and
the reward–KL frontier from the run's held-out or evaluate points, with whether each candidate's points lie on or
above the reference's frontier."""

from __future__ import annotations

from typing import Any

from llm2.report.figures import Figure, FigureContext, MissingFigure
from llm2.tasks.preference.frontier import dominance, frontier_from_evaluations, has_frontier
from llm2.tasks.preference.plots import FrontierSeries, plot_frontier, plot_loss_shapes
from llm2.tasks.preference.shapes import shapes_of

TOP_FRONTIER = 6  # objectives drawn on the frontier besides the reference


def preference_figures(task: Any, context: FigureContext) -> list[Figure | MissingFigure]:
    return [loss_shapes(task, context), frontier(task, context)]


def _unique_labels(names: list[str], taken: set[str]) -> list[str]:
    labels = []
    for number, name in enumerate(names):
        label = name if name not in taken else f"{name} #{number + 1}"
        taken.add(label)
        labels.append(label)
    return labels


def loss_shapes(task: Any, context: FigureContext) -> Figure:
    reference = task.reference_baseline
    reference_code = context.reference.code if context.reference else task.baselines[reference].code
    best = list(context.best)
    items = [(reference, reference_code)] + list(zip(_unique_labels([c.name for c in best], {reference}),
                                                     (c.code for c in best)))
    beta = float(getattr(context.settings, "beta", 0.05))
    shapes = shapes_of(context.call_confined, items, beta)
    title = f"Loss shapes of the {len(best)} best candidates and {reference}" if best else \
        f"Loss shape of {reference}"
    path = plot_loss_shapes(shapes, context.out_dir / "shapes.png", beta, title=title)
    failed = [s for s in shapes if s.error]
    note = ("" if best else f"No candidate has a score yet, so only {reference} is drawn. ") + (
        "Could not draw: " + "; ".join(f"{s.name}: {s.error}" for s in failed) + "." if failed else "")
    caption = ("f(x) is each loss evaluated per pair at x = β·ρ (reference log-probs 0, chosen and rejected "
               "log-probs ±ρ/2), computed in a confined process; f′(x) by autograd. Left: the tails, "
               "x ∈ [−10, 10]; right: the structure near 0, x ∈ [−0.5, 0.5]. Curves far larger than the "
               "reference's are clipped so that it stays readable.")
    return Figure.from_png(path, f"Loss shapes f(x) and f′(x) of the best candidates beside {reference}", caption,
                           note)


def frontier_sentence(series: FrontierSeries, reference: FrontierSeries) -> str:
    """What the figure shows for one objective, from the points it draws against the reference's drawn line."""
    measured = dominance(series, reference)
    outside = len(series.points) - measured.compared
    beyond = f" ({outside} more outside {reference.name}'s KL range)" if outside and measured.compared else ""
    return f"{series.name}: {measured.verdict} of {reference.name}{beyond}"


def frontier(task: Any, context: FigureContext) -> Figure | MissingFigure:
    reference = task.reference_baseline
    title = f"Reward–KL frontier of the best candidates and {reference}"
    how = (f"Produce them with `llm2 heldout {context.run_dir}` (the best candidates and {reference} on the held-out "
           f"suite, which varies β), or `llm2 evaluate --run-dir {context.run_dir} --objective {reference} "
           f"-o beta=0.025 -o beta=0.05 -o beta=0.1 -o beta=0.2`; then run `llm2 report {context.run_dir}` again.")
    series = frontier_from_evaluations(context.evaluations)
    if not has_frontier(series):
        return MissingFigure(title, "No reward–KL points over several β values for this run yet. " + how)
    best_names = {c.name for c in context.best[:TOP_FRONTIER]}
    chosen = [s for s in series if s.name == reference or s.name in best_names]
    if len(chosen) <= 1:  # points for objectives outside the run's best (e.g. catalog losses): show them all
        chosen = series
    path = plot_frontier(chosen, context.out_dir / "frontier.png", reference=reference)
    notes = []
    reference_series = next((s for s in chosen if s.name == reference), None)
    if reference_series is not None:
        for s in chosen:
            if s.name != reference:
                notes.append(frontier_sentence(s, reference_series))
    dropped = len(series) - len(chosen)
    if dropped:
        notes.append(f"{dropped} more objective(s) with points are not drawn, to keep the figure readable")
    caption = ("Gold reward against KL(π‖π_ref) in nats, one line per objective through its β values "
               f"(mean ± std over seeds); upper left is better. A point is on or above {reference}'s frontier when "
               f"its reward is at least the height of {reference}'s drawn line at the same KL ({reference}'s line "
               "joins its own points in order of KL, so it is the frontier the sentences below compare with).")
    return Figure.from_png(path, title, caption, ". ".join(notes) + ("." if notes else ""))
