"""``llm2 tasks``: the tasks llm2 knows, and one task's settings."""

from __future__ import annotations

import click

from llm2.commands.common import TASK_HELP, load_task
from llm2.commands.terminal import add_name_column, console
from llm2.task_api.optional import optional


@click.command("tasks")
@click.option("--task", "task_spec", default=None, help=TASK_HELP + " Show its settings.")
def tasks(task_spec: str | None) -> None:
    """List the registered tasks; with --task, the settings it takes as --task-option KEY=VALUE."""
    from rich.table import Table

    from llm2.task_api.registry import known_tasks
    from llm2.task_api.settings import option_help

    output = console()
    if task_spec is None:
        table = Table(title="tasks (llm2 tasks --task NAME shows one's settings)")
        add_name_column(table, "name", style="bold")
        table.add_column("implemented by", overflow="fold")
        for name, target in sorted(known_tasks().items()):
            table.add_row(name, target)
        output.print(table)
        return
    task = load_task(task_spec)
    texts = task.texts_for(optional(task, "default_settings")())
    table = Table(title=f"{task.name}: {texts.kind}; fitness (by default): {texts.fitness_name}; reference: "
                        f"{task.reference_baseline}; offline proposer: {task.offline_proposer or 'none'}")
    add_name_column(table, "option")
    for column in ("type", "default", "meaning"):
        table.add_column(column, overflow="fold")
    for row in option_help(task.settings_type):
        table.add_row(row.name, row.kind, repr(row.default), row.help)
    output.print(table)
