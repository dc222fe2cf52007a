"""``llm2 objectives``: list the catalog of known preference losses."""

from __future__ import annotations

import json

import click


@click.command("objectives")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (name, formula, source, code) instead of a table.")
def objectives(as_json: bool) -> None:
    """List the known preference objectives: name, source and formula."""
    from llm2.objectives import OBJECTIVES

    if as_json:
        rows = [{"name": o.name, "formula": o.formula, "source": o.source, "code": o.code}
                for o in OBJECTIVES.values()]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title="Preference objectives (x = β·ρ, ρ = r_c − r_r, τ = 0.05)")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("source")
    table.add_column("formula (per pair)")
    for objective in OBJECTIVES.values():
        table.add_row(objective.name, objective.source, objective.formula)
    Console().print(table)
