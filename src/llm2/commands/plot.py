"""``llm2 plot``: a task's picture of some of its objectives, or of an ``llm2 evaluate --json`` file, as a PNG."""

from __future__ import annotations

import json
from pathlib import Path

import click

from llm2.commands.common import load_task, parse_settings, task_option, task_settings_option
from llm2.commands.exits import BadInput
from llm2.task_api.optional import optional


@click.group("plot")
def plot() -> None:
    """Draw objectives or evaluation results as a PNG file (what is drawn is the task's choice)."""


@plot.command("objectives")
@click.argument("names", nargs=-1, required=True)
@task_option()
@task_settings_option
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG file to write.")
def objectives(names: tuple[str, ...], task_spec: str, task_options: tuple[str, ...], out: Path) -> None:
    """Draw the task's known objectives or FILE.py:NAME functions beside its reference, as the task pictures them
    (`llm2 tasks --task T` says what a task draws). Every function is evaluated in a confined process.

    Example: llm2 plot objectives NAME OTHER_NAME --out shapes.png
    """
    from llm2.archive.function_files import read_function

    task = load_task(task_spec)
    settings = parse_settings(task, task_options)
    items = []
    for name in dict.fromkeys((task.reference_baseline, *names)):
        if name in task.baselines:
            items.append((name, task.baselines[name].code))
            continue
        try:
            function = read_function(name, task.contract)
        except ValueError as exc:
            raise BadInput(f"{name!r} is neither one of the task's objectives "
                                       f"({', '.join(sorted(task.baselines))}) nor a readable FILE.py:NAME: {exc}") \
                from None
        items.append((function.name, function.code))
    try:
        warnings = optional(task, "plot_objectives")(task_spec, items, settings, out)
    except NotImplementedError as exc:
        raise BadInput(str(exc)) from None
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"wrote {out} ({', '.join(name for name, _ in items)}; {task.reference_baseline} is the reference)")


@plot.command("results")
@click.argument("eval_json", type=click.Path(dir_okay=False, path_type=Path))
@task_option(default=None)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG file to write.")
def results(eval_json: Path, task_spec: str | None, out: Path) -> None:
    """Draw an `llm2 evaluate --json` file, as the task pictures results (a setting swept over several values).
    The task is the one the file records; --task is needed only for files that record none.

    Example: llm2 evaluate --objective A --objective B -o KEY=1 -o KEY=2 -o KEY=3 --json e.json
    """
    recorded_name, recorded_spec = recorded_task(eval_json)
    spec = task_spec or recorded_spec or recorded_name
    if spec is None:
        raise BadInput(f"{eval_json} records no task; give the one that wrote it with --task")
    task = load_task(spec)
    if recorded_name is not None and task.name != recorded_name:
        raise BadInput(f"{eval_json} holds results of task {recorded_name}, not {task.name}")
    try:
        notes = optional(task, "plot_results")(eval_json, out)
    except (ValueError, NotImplementedError) as exc:
        raise BadInput(str(exc)) from None
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {out}")


def recorded_task(path: Path) -> tuple[str | None, str | None]:
    """(the task's name, how it was given to `llm2 evaluate`) as the file records them; ClickException when the
    file cannot be read as JSON."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path} is not a JSON file: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path} is not an `llm2 evaluate --json` file")
    name, spec = data.get("task"), data.get("task_spec")
    return (name if isinstance(name, str) else None), (spec if isinstance(spec, str) else None)
