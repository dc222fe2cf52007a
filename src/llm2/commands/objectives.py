"""``llm2 objectives``: the known algorithms of a task (its baselines), with formulas and sources."""

from __future__ import annotations

import json

import click

from llm2.commands.common import load_task, task_option


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

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{task.name}: known {task.texts.kind}s ({task.reference_baseline} is the reference)")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("source")
    table.add_column("formula")
    for known in task.baselines.values():
        table.add_row(known.name + (" *" if known.name == task.reference_baseline else ""), known.source,
                      known.formula)
    Console().print(table)
