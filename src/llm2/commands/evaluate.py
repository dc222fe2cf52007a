"""``llm2 evaluate``: train and score a task's baselines or candidate files at several settings and seeds."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from llm2.commands.common import (allow_missing_option, check_layers, check_output_file, evaluation_options,
                                  hold_run_dir, load_task, sweep_settings, task_option, task_settings_option,
                                  world_secret_option)
from llm2.commands.exits import WorkFailed
from llm2.commands.terminal import add_name_column, console, fitness_header, spread_text
from llm2.discovery.fanout import CandidateOutcome


@dataclass(frozen=True)
class Entry:
    """One objective to evaluate: its label and code."""

    objective: str
    code: str


@dataclass(frozen=True)
class Row:
    objective: str
    setting: dict
    fitness_mean: float | None
    fitness_std: float | None
    metrics: dict  # the task's numbers: key -> {"mean": ..., "std": ...}
    seeds: int
    seconds_per_eval: float | None
    status: str
    error: str | None
    sandbox: tuple[str, ...] = ()


def resolve_entries(task, objectives: tuple[str, ...], code_files: tuple[str, ...],
                    objective_files: tuple[str, ...]) -> list[Entry]:
    """Every objective named on the command line, read without running anything; a usage error otherwise."""
    from llm2.archive.function_files import read_function
    from llm2.sandbox.static_checks import static_check

    entries = []
    for name in objectives:
        if name not in task.baselines:
            raise click.BadParameter(f"unknown objective {name!r} for task {task.name}; known: "
                                     f"{', '.join(sorted(task.baselines))}", param_hint="--objective")
        entries.append(Entry(name, task.baselines[name].code))
    for path in code_files:
        try:
            code = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
                                     param_hint="--code") from None
        problems = static_check(code, task.contract)  # refused here, in one line, before any worker starts
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise click.BadParameter(f"{path} is refused by the static checks: {problems[0]}{more}",
                                     param_hint="--code")
        entries.append(Entry(Path(path).stem, code))
    for spec in objective_files:
        try:
            function = read_function(spec, task.contract)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--objective-file") from None
        entries.append(Entry(function.name, function.code))
    return entries


def to_row(entry: Entry, setting: dict, seeds: int, outcome: CandidateOutcome, columns) -> Row:
    metrics = {c.key: {"mean": outcome.value(c.key), "std": outcome.value(f"{c.key}_std")} for c in columns}
    return Row(entry.objective, setting, outcome.fitness, outcome.fitness_std, metrics, seeds,
               outcome.seconds / seeds, outcome.status, outcome.error, outcome.sandbox)


def print_table(task, fitness_name: str, references: list[tuple[str, Any]], rows: list[Row]) -> None:
    from rich.table import Table

    from llm2.archive.text import shown  # objective names and errors are untrusted text

    seeds = rows[0].seeds if rows else None
    table = Table(title=f"llm2 evaluate — {task.name} (fitness: {fitness_name})")
    add_name_column(table, "objective")
    add_name_column(table, "setting")
    for column in (fitness_header(seeds), *(c.label for c in task.metric_columns), "s/eval", "status"):
        table.add_column(column, overflow="fold")
    table.add_column("error", overflow="fold")
    for setting_text, reference in references:
        values = [spread_text(reference.values.get(c.key), None, None, c.digits) for c in task.metric_columns]
        table.add_row("starting point", setting_text, spread_text(reference.fitness, None, None), *values, "-",
                      "ok", "")
    for row in rows:
        values = [spread_text(row.metrics[c.key]["mean"], row.metrics[c.key]["std"], row.seeds, c.digits)
                  for c in task.metric_columns]
        table.add_row(shown(row.objective), row.setting["text"],
                      spread_text(row.fitness_mean, row.fitness_std, row.seeds), *values,
                      "-" if row.seconds_per_eval is None else f"{row.seconds_per_eval:.2f}", row.status,
                      shown(row.error or ""))
    console().print(table)


@click.command()
@task_option()
@task_settings_option
@click.option("--objective", "objectives", multiple=True, help="One of the task's baselines (repeatable).")
@click.option("--code", "code_files", multiple=True, type=click.Path(dir_okay=False),
              help="A Python file with one function in the task's contract (repeatable).")
@click.option("--objective-file", "objective_files", multiple=True,
              help="A function in a file, FILE.py:NAME, e.g. from llm2 export (repeatable).")
@evaluation_options(3, "Training seeds per objective and setting.", "Also write the results as JSON.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also store the points in this run's archive (for its report's figures).")
@allow_missing_option
@world_secret_option
def evaluate(task_spec, task_options, objectives, code_files, objective_files, seeds, workers, timeout, json_path,
             run_dir, allow_missing) -> None:
    """Train and score each objective at each setting and seed; every function runs in the sandbox.

    A setting given several times sweeps it: -o KEY=1 -o KEY=2 evaluates both.
    """
    from llm2.commands.progress_display import progress_on_stderr
    from llm2.discovery.fanout import evaluate_grid
    from llm2.execution import make_executor
    from llm2.sandbox.preflight import SandboxUnavailable, preflight
    from llm2.task_api.base import EvalSetting

    allowed = check_layers(allow_missing)
    task = load_task(task_spec)
    settings_list = sweep_settings(task, task_options)
    entries = resolve_entries(task, objectives, code_files, objective_files)
    check_output_file(json_path, "--json")
    if not entries:
        raise click.UsageError("name at least one --objective, --code FILE or --objective-file FILE.py:NAME")
    if run_dir is not None:
        _open_for_points(run_dir).close()  # fail now, not after the work
        hold_run_dir(run_dir)  # it writes the run's archive: one writer at a time
    try:
        preflight(allowed)
        with progress_on_stderr():
            for settings in settings_list:
                task.prepare(settings)
        references = [(task.setting_text(s), task.scorer(s).reference_metrics()) for s in settings_list]
    except SandboxUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    except (ValueError, OSError) as exc:  # the task cannot build what the settings need (missing data, ...)
        raise click.ClickException(f"task {task.name} cannot prepare {task.setting_text(settings)}: {exc}") from None
    rows: list[Row] = []
    n_jobs = len(entries) * len(settings_list) * seeds
    # no more workers than jobs: each one loads its training data before it can serve
    with make_executor("local", task_spec=task_spec, task=task, timeout_s=timeout, allow_missing=allowed,
                       workers=min(workers or os.cpu_count() or 1, n_jobs), warm_settings=settings_list[0]) \
            as executor:
        outcomes = evaluate_grid(executor, list(enumerate(e.code for e in entries)),
                                 [EvalSetting(s) for s in settings_list], list(range(seeds)))
    for position, settings in enumerate(settings_list):
        label = {**dataclasses.asdict(settings), "text": task.setting_text(settings)}
        rows.extend(to_row(e, label, seeds, outcomes[(position, i)], task.metric_columns)
                    for i, e in enumerate(entries))
    fitness_name = task.texts_for(settings_list[0]).fitness_name
    print_table(task, fitness_name, references, rows)
    if json_path:
        from llm2.task_api import world_secret

        payload = {"task": task.name, "task_spec": task_spec, "fitness": fitness_name,
                   "world_secret": world_secret.fingerprint(),
                   "references": [{"setting": text, "fitness_mean": m.fitness, "values": m.values}
                                  for text, m in references],
                   "results": [asdict(r) for r in rows]}
        Path(json_path).write_text(json.dumps(payload, indent=2), encoding="utf-8")
    if run_dir is not None:
        store_points(run_dir, entries, rows)
    failed = [row for row in rows if row.status != "ok"]
    if failed:
        raise WorkFailed(f"{len(failed)} of {len(rows)} evaluations did not succeed (see the status and error "
                         "columns)")


def _open_for_points(run_dir: Path):
    from llm2.commands.common import open_run_archive

    return open_run_archive(run_dir, readonly=False)


def store_points(run_dir: Path, entries: list[Entry], rows: list[Row]) -> None:
    from llm2.archive import normalized_code_hash

    codes = {e.objective: e.code for e in entries}
    archive = _open_for_points(run_dir)
    try:
        for row in rows:
            setting = {k: v for k, v in row.setting.items() if k != "text"}
            metrics = {k: v["mean"] for k, v in row.metrics.items()}
            metrics.update({f"{k}_std": v["std"] for k, v in row.metrics.items()})
            archive.add_evaluation(candidate_name=row.objective, code_hash=normalized_code_hash(codes[row.objective]),
                                   suite="evaluate", setting={**setting, "seeds": row.seeds},
                                   fitness=row.fitness_mean, seconds=row.seconds_per_eval, status=row.status,
                                   error=row.error, metrics=metrics, sandbox=row.sandbox)
    finally:
        archive.close()
