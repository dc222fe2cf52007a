"""``build_report(run_dir)``: read a run's archive (read-only, also while the run goes on) and write DIR/report/."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

from llm2.archive import Archive, CandidateRecord
from llm2.archive.elites import elites
from llm2.archive.ranking import baseline, ranked
from llm2.files import write_text
from llm2.task_api.optional import OptionalParts, optional
from llm2.report.clusters import run_clusters
from llm2.report.curves import training_curves_figure
from llm2.report.failures import failure_stats
from llm2.report.figures import Figure, FigureContext, MissingFigure
from llm2.report.html import PageContent, render_page
from llm2.report.plots import CandidatePoint, plot_discovery_curve, plot_failures
from llm2.report.proposer_shares import proposer_shares, shares_html
from llm2.report.selfdev import selfdev_figures
from llm2.task_api.card import TaskCard

REPORT_DIRNAME = "report"
TOP_FIGURES = 4  # best candidates the task's figures show beside the reference


def build_report(run_dir: str | os.PathLike, top: int = TOP_FIGURES, figure_timeout_s: float = 120.0) -> Path:
    """Write ``run_dir/report/index.html`` with its figures; returns the page's path.

    Raises llm2.archive.ArchiveError when ``run_dir`` holds no readable archive.
    """
    run_dir = Path(run_dir)
    with Archive.open(run_dir, readonly=True) as archive:
        run, candidates, evaluations = archive.run, archive.candidates(), archive.evaluations()
        events, card_data = archive.run_events(), archive.task_card
        grid = elites(archive) if run.config.get("map_elites") else []
        requests = archive.requests()
    out = run_dir / REPORT_DIRNAME
    out.mkdir(parents=True, exist_ok=True)
    task, settings, task_problem = _task_of(run)
    card = TaskCard.from_dict(card_data) if card_data else (TaskCard.of(task, settings) if task else
                                                           TaskCard(run.task, "", "fitness", ""))
    curve = discovery_curve(candidates, card, out)
    stats = failure_stats(candidates)
    failures = None
    if stats.total:
        failures = Figure.from_png(plot_failures(stats.counts, out / "failures.png"),
                                   "Candidates by stage reached and status",
                                   "How far each proposal got in the evaluation cascade, and how it ended.")
    reference = baseline(candidates, card.reference_baseline)
    if task is None:
        task_figures: list[Figure | MissingFigure] = [MissingFigure("The task's own figures", task_problem)]
    else:
        allow_missing = tuple(run.config.get("allow_missing") or ())
        context = FigureContext(run, run_dir, run.config.get("task", run.task), settings, candidates, evaluations,
                                ranked(candidates, include_baselines=False)[:top], reference, out,
                                figure_timeout_s, allow_missing)
        task_figures = _task_figures(task, context)
    training = training_curves_figure(run_dir, ranked(candidates, include_baselines=False)[:top], reference, out)
    task_figures = [*([training] if training else []), *task_figures]
    if grid and task is not None:  # a --map-elites run: its grid, on the task's axes
        from llm2.report.grid import elites_grid_figure

        drawn = elites_grid_figure(grid, optional(task, "descriptors"), card.fitness_name, out)
        task_figures = [*([drawn] if drawn else []), *task_figures]
    task_figures = [*selfdev_figures(run_dir, candidates, reference, card.reference_baseline, card.fitness_name,
                                     out), *task_figures]  # [] unless the run is a self-develop run
    radius = optional(task, "cluster_radius") if task is not None else OptionalParts.cluster_radius
    clusters = run_clusters(run_dir, candidates, radius)
    page = render_page(PageContent(run=run, run_dir=str(run_dir), card=card,
                                   setting_text=task.setting_text(settings) if task else "", candidates=candidates,
                                   events=events, curve=curve, task_figures=task_figures, failures=stats,
                                   failures_figure=failures, generated_at=time.time(),
                                   proposers_section=shares_html(
                                       proposer_shares(candidates, reference.fitness if reference else None,
                                                       requests), card.reference_baseline, card.fitness_name),
                                   clusters=clusters))
    index = out / "index.html"
    write_text(index, page)  # atomically: a reader never sees half a page
    return index


def _task_of(run) -> tuple[Any, Any, str]:
    """(task, the run's settings, "") — or (None, None, why the task's figures cannot be drawn)."""
    from llm2.task_api.registry import TaskNotFound, load_task
    from llm2.task_api.settings import SettingsError

    spec = run.config.get("task", run.task)
    try:
        task = load_task(spec)
        return task, task.settings_from_dict(run.config.get("task_settings") or {}), ""
    except (TaskNotFound, SettingsError) as exc:
        return None, None, f"The task's figures are missing: {exc}"


def _task_figures(task: Any, context: FigureContext) -> list[Figure | MissingFigure]:
    try:
        return list(task.figures(context))
    except Exception as exc:  # noqa: BLE001 - a broken figure must not cost the whole report
        return [MissingFigure("The task's own figures", f"could not be drawn: {type(exc).__name__}: {exc}")]


def discovery_curve(candidates: Sequence[CandidateRecord], card: TaskCard, out: Path) -> Figure | None:
    proposals = [c for c in candidates if not c.is_baseline and c.generation > 0]
    if not proposals:
        return None
    baselines = {c.name: c.fitness for c in candidates if c.is_baseline and c.fitness is not None}
    points = [CandidatePoint(c.name, c.generation, c.fitness if c.status == "ok" else None, c.status, c.stage)
              for c in proposals]
    pending = sum(c.status == "pending" for c in proposals)
    title = f"Discovery curve: {len(proposals)} candidates" + (f", {pending} still pending" if pending else "")
    path = plot_discovery_curve(points, baselines, out / "discovery.png", card.reference_baseline,
                                card.fitness_name, title)
    return Figure.from_png(path, "Fitness of every candidate by generation",
                           "Every candidate's fitness by generation (dots), the best so far (red steps), the "
                           f"baselines measured in this run ({card.reference_baseline or 'the reference'} dashed "
                           "black); below, the candidates that were rejected or failed, by reason.")
