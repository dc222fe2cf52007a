"""``llm2 objectives``: the known algorithms of a task (its baselines), with formulas and sources."""

from __future__ import annotations

import json

import click

from llm2.commands.common import load_task, task_option
from llm2.commands.terminal import add_name_column, console


@click.command("objectives")
@task_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (name, formula, source, code) instead of a table.")
def objectives(task_spec: str, as_json: bool) -> None:
    """List the task's known algorithms: name, source and formula (the reference marked)."""
    task = load_task(task_spec)
    if as_json:
        rows = [{"name": b.name, "formula": b.formula, "source": b.source, "code": b.code,
                 "reference": b.name == task.reference_baseline} for b in task.baselines.values()]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return

    from rich.table import Table

    # The kind is the task's own words, singular ("preference optimization loss"): it is not made plural here.
    table = Table(title=f"{task.name}: its known algorithms, each a {task.texts.kind} ({task.reference_baseline} is "
                        "the reference, marked *)")
    add_name_column(table, "name", style="bold")
    table.add_column("source", overflow="fold")
    table.add_column("formula", overflow="fold")
    for known in task.baselines.values():
        table.add_row(known.name + (" *" if known.name == task.reference_baseline else ""), known.source,
                      known.formula)
    console().print(table)
