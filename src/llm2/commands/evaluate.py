"""``llm2 evaluate``: train and score catalog objectives or candidate files at several β and seeds."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from llm2.discovery.evaluations import CandidateOutcome


@dataclass(frozen=True)
class Entry:
    """One objective to evaluate: its label and code, or why it cannot be."""

    objective: str
    code: str | None
    error: str | None = None


@dataclass(frozen=True)
class Row:
    objective: str
    beta: float
    fitness_mean: float | None
    fitness_std: float | None
    kl_mean: float | None
    kl_std: float | None
    seeds: int
    seconds_per_eval: float | None
    status: str
    error: str | None


def resolve_entries(objectives: tuple[str, ...], code_files: tuple[str, ...],
                    objective_files: tuple[str, ...]) -> list[Entry]:
    from llm2.objectives import OBJECTIVES, load_objective_file

    entries = []
    for name in objectives:
        if name in OBJECTIVES:
            entries.append(Entry(name, OBJECTIVES[name].code))
        else:
            entries.append(Entry(name, None, f"unknown objective {name!r}; known: {', '.join(sorted(OBJECTIVES))}"))
    for path in code_files:
        try:
            entries.append(Entry(Path(path).stem, Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            entries.append(Entry(Path(path).stem, None, f"cannot read {path}: {exc.strerror or exc}"))
    for spec in objective_files:
        try:
            objective = load_objective_file(spec)
            entries.append(Entry(objective.name, objective.code))
        except (ValueError, OSError, SyntaxError) as exc:
            entries.append(Entry(spec, None, str(exc)))
    return entries


def to_row(entry: Entry, beta: float, seeds: int, outcome: CandidateOutcome | None) -> Row:
    if outcome is None:
        return Row(entry.objective, beta, None, None, None, None, seeds, None, "invalid", entry.error)
    return Row(entry.objective, beta, outcome.fitness, outcome.fitness_std, outcome.kl,
               outcome.metrics.get("kl_std"), seeds, outcome.seconds / seeds, outcome.status, outcome.error)


def print_table(task: str, reference, rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    from llm2.discovery.feedback import fmt

    table = Table(title=f"llm2 evaluate — {task}")
    for column in ("objective", "β", "fitness (mean ± std)", "KL (mean ± std)", "s/eval", "status"):
        table.add_column(column)
    table.add_column("error", overflow="fold", max_width=70)
    table.add_row("reference (untrained)", "-", fmt(reference.fitness), "0", "-", "ok", "")
    for row in rows:
        table.add_row(row.objective, f"{row.beta:g}", fmt(row.fitness_mean, row.fitness_std),
                      fmt(row.kl_mean, row.kl_std), "-" if row.seconds_per_eval is None else f"{row.seconds_per_eval:.2f}",
                      row.status, row.error or "")
    Console(width=160).print(table)


@click.command()
@click.option("--task", default="preference-synthetic", show_default=True)
@click.option("--objective", "objectives", multiple=True, help="A catalog objective (repeatable).")
@click.option("--code", "code_files", multiple=True, type=click.Path(dir_okay=False),
              help="A Python file with one loss function in the task's contract (repeatable).")
@click.option("--objective-file", "objective_files", multiple=True,
              help="An exported objective, FILE.py:NAME (repeatable).")
@click.option("--beta", "betas", multiple=True, type=float, help="β values [default: 0.05] (repeatable).")
@click.option("--seeds", type=int, default=3, show_default=True, help="Training seeds per objective and β.")
@click.option("--world-seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, default=None, help="Parallel workers [default: number of cores].")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per evaluation.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the results as JSON.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also store the points in this run's archive (for its report's reward–KL frontier).")
def evaluate(task, objectives, code_files, objective_files, betas, seeds, world_seed, workers, timeout, json_path,
             run_dir) -> None:
    """Train and score each objective for each β and seed; candidate code runs in the sandbox."""
    from llm2.discovery.evaluations import evaluate_codes
    from llm2.execution import make_executor
    from llm2.tasks import get_task
    from llm2.tasks.base import EvalSetting

    if seeds < 1:
        raise click.UsageError("--seeds must be at least 1")
    entries = resolve_entries(objectives, code_files, objective_files)
    if not entries:
        raise click.UsageError("name at least one --objective, --code FILE or --objective-file FILE.py:NAME")
    try:
        task_obj = get_task(task)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    betas = betas or (0.05,)
    base = EvalSetting(world_seed=world_seed)
    task_obj.prepare(base)
    reference = task_obj.reference_metrics(base)
    runnable = [(i, e) for i, e in enumerate(entries) if e.code is not None]
    rows: list[Row] = []
    n_jobs = len(runnable) * len(betas) * seeds
    if runnable:
        # no more workers than jobs: each one loads the world before it can serve
        with make_executor("local", task_name=task, workers=min(workers or os.cpu_count() or 1, n_jobs),
                           timeout_s=timeout) as executor:
            for beta in betas:
                outcomes = evaluate_codes(executor, [(i, e.code) for i, e in runnable], base.replace(beta=beta),
                                          list(range(seeds)))
                rows.extend(to_row(e, beta, seeds, outcomes.get(i)) for i, e in enumerate(entries) if e.code)
    rows.extend(to_row(e, beta, seeds, None) for e in entries if e.code is None for beta in betas)
    print_table(task, reference, rows)
    if json_path:
        payload = {"task": task, "world_seed": world_seed,
                   "reference": {"fitness_mean": reference.fitness, "kl_mean": 0.0},
                   "results": [asdict(r) for r in rows]}
        Path(json_path).write_text(json.dumps(payload, indent=2), encoding="utf-8")
    if run_dir is not None:
        store_points(run_dir, entries, rows, world_seed)


def store_points(run_dir: Path, entries: list[Entry], rows: list[Row], world_seed: int) -> None:
    from llm2.archive import Archive, normalized_code_hash

    codes = {e.objective: e.code for e in entries}
    archive = Archive.open(run_dir)
    try:
        for row in rows:
            archive.add_evaluation(candidate_name=row.objective,
                                   code_hash=normalized_code_hash(codes.get(row.objective) or ""),
                                   suite="evaluate", setting={"beta": row.beta, "world_seed": world_seed,
                                                              "seeds": row.seeds},
                                   fitness=row.fitness_mean, kl=row.kl_mean, seconds=row.seconds_per_eval,
                                   status=row.status, error=row.error)
    finally:
        archive.close()
