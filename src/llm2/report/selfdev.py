"""The figures of a self-develop run (``llm2 self-develop``): how the factory's samples score per iteration, and
where the best algorithm came from. Drawn from the run's own files (DIR/selfdev) and the archive's records; nothing
is evaluated here."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure as MplFigure

from llm2.archive.records import CandidateRecord
from llm2.report.figures import Figure, MissingFigure
from llm2.report.plots import REFERENCE_STYLE, plain, save
from llm2.files import read_json, read_jsonl
from llm2.selfdev_files import RunFiles


@dataclass(frozen=True)
class IterationPoints:
    iteration: int
    temperature: float
    fitness: tuple[float, ...]  # the valid samples' (duplicates count with their original's)
    samples: int
    chosen: tuple[tuple[int, float], ...]  # (candidate id, fitness) the next factory was trained towards


@dataclass(frozen=True)
class LineageStep:
    iteration: int
    candidate_id: int
    name: str
    fitness: float
    similarity: float  # of its code to the next step's (1.0 for the best itself)


def selfdev_figures(run_dir: Path, candidates: Sequence[CandidateRecord], reference_record: CandidateRecord | None,
                    reference_name: str, fitness_name: str, out: Path) -> list[Figure | MissingFigure]:
    """[] for a run that is not a self-develop run. ``reference_record``: the reference baseline as measured."""
    files = RunFiles(Path(run_dir))
    if not files.plan.is_file():
        return []
    iterations = read_iterations(files)
    if not iterations:
        return [MissingFigure("Self-develop: the factory's samples per iteration",
                              "no iteration is finished yet; the figures appear once the first one is evaluated")]
    reference = None if reference_record is None else reference_record.fitness
    by_id = {c.id: c for c in candidates}
    figures: list[Figure | MissingFigure] = [Figure.from_png(
        save(distribution_figure(iterations, reference, reference_name, fitness_name), out / "selfdev_fitness.png"),
        "Self-develop: the factory's samples per iteration",
        "Fitness of every valid algorithm the factory wrote, per iteration (dots; box: quartiles; diamond: mean), "
        f"the reference baseline {reference_name} (dashed black) and, below, the share of valid algorithms. "
        "Iteration K's factory was trained with DPO on pairs from iteration K-1's own results.")]
    lineage = best_lineage(iterations, by_id)
    if lineage:
        note = " ← ".join(f"{s.name} (iteration {s.iteration}, {s.fitness:.4f}"
                          + (f", code similarity {s.similarity:.2f})" if s.similarity < 1 else ")")
                          for s in reversed(lineage))
        figures.append(Figure.from_png(
            save(lineage_figure(iterations, lineage, _chosen_points(iterations), reference, reference_name,
                                fitness_name),
                 out / "selfdev_lineage.png"),
            "Self-develop: the best algorithm's lineage",
            "The run's best algorithm (right) and, for each earlier iteration, the chosen algorithm (one the next "
            "factory was trained towards) whose code is most like the next step's: the line it most likely "
            "descends along. Grey: all valid samples; orange: every iteration's chosen.",
            note=f"Lineage, newest first: {note}."))
    return figures


def read_iterations(files: RunFiles) -> list[IterationPoints]:
    points = []
    for k in files.iterations_done():
        stats = read_json(files.stats(k))
        samples = _rows(files.samples(k))
        chosen = tuple(dict.fromkeys((p["chosen_candidate"], p["chosen_fitness"]) for p in _rows(files.pairs(k))))
        points.append(IterationPoints(k, float(stats["temperature"]),
                                      tuple(s["fitness"] for s in samples if s.get("valid")), int(stats["samples"]),
                                      chosen))
    return points


def best_lineage(iterations: Sequence[IterationPoints], by_id: dict[int, CandidateRecord]) -> list[LineageStep]:
    """The best sample of the run, then back through each earlier iteration's chosen algorithms, nearest code first."""
    samples = sorted((c for c in by_id.values() if 1 <= c.generation <= len(iterations) and c.status == "ok"
                      and c.fitness is not None), key=lambda c: (c.generation, c.id))
    if not samples:
        return []
    current = max(samples, key=lambda c: c.fitness)  # the earliest of equals
    iteration = current.generation - 1
    steps = [LineageStep(iteration, current.id, current.name, current.fitness, 1.0)]
    for earlier in range(iteration - 1, -1, -1):
        chosen = [(by_id[i], fitness) for i, fitness in iterations[earlier].chosen if i in by_id]
        if not chosen:
            break
        similarity, parent, fitness = max(((_similarity(c.code, current.code), c, f) for c, f in chosen),
                                          key=lambda item: (item[0], item[2]))
        steps.append(LineageStep(earlier, parent.id, parent.name, fitness, similarity))
        current = parent
    return steps


def distribution_figure(iterations: Sequence[IterationPoints], reference: float | None, reference_name: str,
                        fitness_name: str) -> MplFigure:
    fig = MplFigure(figsize=(8.5, 6))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1.3]})
    rng = np.random.default_rng(0)
    xs = [p.iteration for p in iterations]
    with_scores = [p for p in iterations if p.fitness]
    if with_scores:
        top.boxplot([list(p.fitness) for p in with_scores], positions=[p.iteration for p in with_scores],
                    widths=0.5, showfliers=False, manage_ticks=False)
        for p in with_scores:
            top.scatter(p.iteration + rng.uniform(-0.18, 0.18, len(p.fitness)), p.fitness, s=12, alpha=0.45,
                        color="tab:blue", zorder=3, label="valid sample" if p is with_scores[0] else None)
        top.plot([p.iteration for p in with_scores], [float(np.mean(p.fitness)) for p in with_scores], marker="D",
                 color="tab:red", linewidth=1.5, zorder=4, label="mean")
    if reference is not None and math.isfinite(reference):
        top.axhline(reference, label=f"{plain(reference_name)} (reference) {reference:.3f}", **REFERENCE_STYLE)
    top.set_ylabel(f"fitness ({plain(fitness_name)})")
    top.set_title("The factory's algorithms, iteration by iteration")
    top.grid(alpha=0.3)
    top.legend(loc="best", fontsize=8)
    shares = [len(p.fitness) / p.samples if p.samples else 0.0 for p in iterations]
    bottom.bar(xs, shares, color="tab:green", width=0.5)
    for x, share, p in zip(xs, shares, iterations):
        bottom.text(x, share, f"{share:.0%}", ha="center", va="bottom", fontsize=8)
    bottom.set_ylim(0, 1.15)
    bottom.set_ylabel("valid share")
    bottom.set_xlabel("iteration (temperature)")
    bottom.set_xticks(xs, [f"{p.iteration}\n(T {p.temperature:g})" for p in iterations])
    bottom.grid(alpha=0.3, axis="y")
    return fig


def _chosen_points(iterations: Sequence[IterationPoints]) -> list[tuple[int, float]]:
    return [(p.iteration, fitness) for p in iterations for _, fitness in p.chosen]


def lineage_figure(iterations: Sequence[IterationPoints], lineage: Sequence[LineageStep],
                   chosen: Sequence[tuple[int, float]], reference: float | None, reference_name: str,
                   fitness_name: str) -> MplFigure:
    fig = MplFigure(figsize=(8.5, 4.8))
    ax = fig.subplots()
    rng = np.random.default_rng(1)
    for p in iterations:
        if p.fitness:
            ax.scatter(p.iteration + rng.uniform(-0.15, 0.15, len(p.fitness)), p.fitness, s=10, color="tab:gray",
                       alpha=0.35, label="valid sample" if p.iteration == iterations[0].iteration else None)
    if chosen:
        ax.scatter([x for x, _ in chosen], [y for _, y in chosen], s=40, color="tab:orange", zorder=3,
                   label="chosen (the next factory was trained towards)")
    steps = list(reversed(lineage))
    ax.plot([s.iteration for s in steps], [s.fitness for s in steps], color="tab:red", marker="o", linewidth=2,
            zorder=4, label="lineage of the best")
    for s in steps:
        ax.annotate(plain(s.name, 28), (s.iteration, s.fitness), textcoords="offset points", xytext=(4, 6),
                    fontsize=7)
    if reference is not None and math.isfinite(reference):
        ax.axhline(reference, label=f"{plain(reference_name)} (reference) {reference:.3f}", **REFERENCE_STYLE)
    ax.set_xticks([p.iteration for p in iterations])
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"fitness ({plain(fitness_name)})")
    ax.set_title("Where the best algorithm came from")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _rows(path: Path) -> list[dict]:
    return read_jsonl(path) if path.is_file() else []
