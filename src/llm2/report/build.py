"""``build_report(run_dir)``: read a run's archive (read-only, also while the run goes on) and write DIR/report/."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, Sequence

from llm2.archive import Archive, CandidateRecord, EvaluationRecord
from llm2.report.failures import FailureStats, failure_stats
from llm2.report.frontier import frontier_from_evaluations, has_frontier
from llm2.report.html import Figure, PageContent, render_page
from llm2.report.plots import (REFERENCE, CandidatePoint, plot_discovery_curve, plot_failures, plot_frontier,
                               plot_loss_shapes)
from llm2.report.shapes import LossShape, shapes_from_code

REPORT_DIRNAME = "report"
TOP_SHAPES = 4  # best candidates drawn beside dpo in the loss shapes
TOP_FRONTIER = 6  # objectives drawn on the frontier besides dpo


def build_report(run_dir: str | os.PathLike, top: int = TOP_SHAPES, shape_timeout_s: float = 120.0) -> Path:
    """Write ``run_dir/report/index.html`` with its figures; returns the page's path.

    Raises llm2.archive.ArchiveError when ``run_dir`` holds no readable archive.
    """
    run_dir = Path(run_dir)
    with Archive.open(run_dir, readonly=True) as archive:
        run = archive.run
        candidates = archive.candidates()
        evaluations = archive.evaluations()
    out = run_dir / REPORT_DIRNAME
    out.mkdir(parents=True, exist_ok=True)
    beta = float(run.config.get("beta", 0.05))
    proposals = [c for c in candidates if not c.is_baseline]
    best = best_candidates(candidates, top)
    shape_items = [(REFERENCE, dpo_code(candidates))] + list(zip(unique_labels(best), (c.code for c in best)))
    with ThreadPoolExecutor(max_workers=1) as background:
        # The shapes' child process (torch import, candidate code) runs while this thread draws the rest.
        pending_shapes = background.submit(shapes_from_code, shape_items, beta, timeout_s=shape_timeout_s)
        other = draw_figures(run_dir, out, candidates, proposals, evaluations)
        shapes, shapes_note = loss_shapes_figure(pending_shapes.result(), len(best), out, beta)
    page = render_page(PageContent(run=run, run_dir=str(run_dir), candidates=candidates, curve=other.curve,
                                   shapes=shapes, shapes_note=shapes_note, frontier=other.frontier,
                                   frontier_note=other.frontier_note, failures=other.stats,
                                   failures_figure=other.failures, generated_at=time.time()))
    index = out / "index.html"
    partial = out / f".index.html.{os.getpid()}.tmp"
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, index)  # a reader never sees half a page
    return index


class OtherFigures(NamedTuple):
    curve: Figure | None
    frontier: Figure | None
    frontier_note: str
    stats: FailureStats
    failures: Figure | None


def draw_figures(run_dir: Path, out: Path, candidates: Sequence[CandidateRecord],
                 proposals: Sequence[CandidateRecord], evaluations: Sequence[EvaluationRecord]) -> OtherFigures:
    """The figures that need no candidate code: discovery curve, frontier, failure statistics."""
    curve = None
    if proposals:
        baselines = {c.name: c.fitness for c in candidates if c.is_baseline and c.fitness is not None}
        points = [CandidatePoint(c.name, c.generation, c.fitness if c.status == "ok" else None, c.status,
                                 c.stage) for c in proposals]
        pending = sum(c.status == "pending" for c in proposals)
        title = f"Discovery curve: {len(proposals)} candidates" + (f", {pending} still pending" if pending else "")
        curve = Figure.from_png(plot_discovery_curve(points, baselines, out / "discovery.png", title),
                                "Fitness of every candidate by generation",
                                "Every candidate's fitness by generation (dots), the best so far (red steps), the "
                                "baselines measured in this run (dpo dashed black); below, the candidates that were "
                                "rejected or failed, by reason.")
    frontier, frontier_note = frontier_figure(evaluations, candidates, out, run_dir)
    stats = failure_stats(candidates)
    failures = None
    if stats.total:
        failures = Figure.from_png(plot_failures(stats.counts, out / "failures.png"),
                                   "Candidates by stage reached and status",
                                   "How far each proposal got in the evaluation cascade, and how it ended.")
    return OtherFigures(curve, frontier, frontier_note, stats, failures)


def unique_labels(candidates: Sequence[CandidateRecord]) -> list[str]:
    """Candidate names as plot labels; a name seen twice (or a candidate calling itself dpo) gets its index."""
    seen = {REFERENCE}
    labels = []
    for c in candidates:
        label = c.name if c.name not in seen else f"{c.name} #{c.index}"
        seen.add(label)
        labels.append(label)
    return labels


def dpo_code(candidates: Sequence[CandidateRecord]) -> str:
    measured = [c for c in candidates if c.is_baseline and c.name == REFERENCE]
    if measured:
        return measured[0].code
    from llm2.objectives import OBJECTIVES

    return OBJECTIVES[REFERENCE].code


def best_candidates(candidates: Sequence[CandidateRecord], n: int) -> list[CandidateRecord]:
    scored = [c for c in candidates if c.status == "ok" and c.fitness is not None]
    return sorted(scored, key=lambda c: (-c.fitness, c.index))[:n]


def loss_shapes_figure(shapes: Sequence[LossShape], n_best: int, out: Path, beta: float) -> tuple[Figure, str]:
    path = plot_loss_shapes(shapes, out / "shapes.png", beta,
                            title=f"Loss shapes of the {n_best} best candidates and dpo" if n_best else
                            "Loss shape of dpo")
    failed = [s for s in shapes if s.error]
    note = ("" if n_best else "No candidate has a score yet, so only dpo is drawn. ") + (
        "Could not draw: " + "; ".join(f"{s.name}: {s.error}" for s in failed) + "." if failed else "")
    caption = ("f(x) is each loss evaluated per pair at x = β·ρ (reference log-probs 0, chosen and rejected "
               "log-probs ±ρ/2); f′(x) by autograd. Left: the tails, x ∈ [−10, 10]; right: the structure "
               "near 0, "
               "x ∈ [−0.5, 0.5]. Curves far larger than dpo's are clipped so that dpo stays readable.")
    return Figure.from_png(path, "Loss shapes f(x) and f′(x) of the best candidates beside dpo", caption), note


def frontier_figure(evaluations: Sequence[EvaluationRecord], candidates: Sequence[CandidateRecord], out: Path,
                    run_dir: Path) -> tuple[Figure | None, str]:
    how = (f"Produce them with `llm2 heldout {run_dir}` (the best candidates and dpo on the held-out suite), or "
           f"`llm2 evaluate --run-dir {run_dir} --objective dpo --beta 0.01 --beta 0.05 --beta 0.5`; then run "
           f"`llm2 report {run_dir}` again.")
    series = frontier_from_evaluations(evaluations)
    if not has_frontier(series):
        return None, "No reward–KL points over several β values for this run yet. " + how
    best_names = {c.name for c in best_candidates(candidates, TOP_FRONTIER)}
    chosen = [s for s in series if s.name == REFERENCE or s.name in best_names]
    if len(chosen) <= 1:  # points for objectives outside the run's best (e.g. catalog losses): show them all
        chosen = series
    dropped = len(series) - len(chosen)
    path = plot_frontier(chosen, out / "frontier.png")
    note = f"{dropped} more objective(s) with points are not drawn, to keep the figure readable." if dropped else ""
    caption = ("Mean gold reward against KL(π‖π_ref) in nats, one line per objective through its β values "
               "(mean ± std over seeds); upper left is better.")
    return Figure.from_png(path, "Reward–KL frontier of the best candidates and dpo", caption), note
