"""``llm2 leaderboard DIR``: a run's best candidates as a table (or JSON), the task's reference always shown."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from llm2.commands.common import open_run_archive, run_card
from llm2.commands.exits import BadInput
from llm2.numbers import decimal_text
from llm2.commands.terminal import add_name_column, console, fitness_header, spread_text


def _number(value: float | None, digits: int) -> str:
    return decimal_text(value, digits=digits, missing="-")


def render_table(rows, run, counts, card, show_errors: bool):
    from rich.table import Table

    from llm2.archive.text import shown  # names, errors, the model's name: untrusted text, markup escaped

    proposals = {status: n for status, n in counts.items() if status != "baseline"}
    summary = ", ".join(f"{n} {status}" for status, n in sorted(proposals.items()))
    table = Table(title=shown(f"llm2 run {run.run_id} · task {run.task} · proposer {run.proposer}"
                              f"{' (' + run.model + ')' if run.model else ''} · {run.status}"),
                  caption=f"{sum(proposals.values())} proposals ({summary or 'none yet'}) and"
                          f" {counts.get('baseline', 0)} baselines; {card.reference_baseline or 'no'} is the "
                          f"reference row; fitness: {card.fitness_name}")
    seeds = run.config.get("seeds")
    table.add_column("#", justify="right")
    add_name_column(table, "name")
    table.add_column(fitness_header(seeds), justify="right")
    for column in card.metric_columns:
        table.add_column(column.label, justify="right")
    table.add_column("status")
    table.add_column("gen", justify="right")
    table.add_column("seconds", justify="right")
    if show_errors:
        table.add_column("why", overflow="fold", max_width=60)
    # A reference row added below the top N gets a rule above it, so it does not read as the N+1th.
    appended_reference = len(rows) > 1 and rows[-1].is_reference and rows[-1].rank != len(rows)
    for position, row in enumerate(rows):
        c = row.candidate
        name = c.name + (" (reference)" if row.is_reference else " (baseline)" if c.is_baseline else "")
        cells = [str(row.rank) if row.rank is not None else "-", shown(name), spread_text(c.fitness, c.fitness_std, seeds),
                 *(_number(c.value(column.key), column.digits) for column in card.metric_columns),
                 c.status, str(c.generation), _number(c.seconds, 1)]
        if show_errors:
            cells.append(shown(c.error or (f"duplicate of #{c.duplicate_of}" if c.duplicate_of else "")))
        style = "bold" if row.is_reference else "italic" if c.is_baseline else None
        table.add_row(*cells, style=style, end_section=appended_reference and position == len(rows) - 2)
    return table


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many scored candidates and baselines to show.")
@click.option("--all", "show_all", is_flag=True, help="Every candidate, failed and rejected ones included.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout instead of the table.")
def leaderboard(run_dir: Path, top: int, show_all: bool, as_json: bool) -> None:
    """The best candidates of the run in RUN_DIR by fitness, with the task's reference baseline as a row."""
    print_leaderboard(run_dir, top, show_all, as_json)


def print_leaderboard(run_dir: Path, top: int = 10, show_all: bool = False, as_json: bool = False) -> None:
    from llm2.archive import ArchiveError
    from llm2.archive.ranking import leaderboard_rows, status_counts

    archive = open_run_archive(run_dir)
    try:
        run, candidates = archive.run, archive.candidates()
        card = run_card(archive)
        shares = _shares(archive, candidates, card) if run.config.get("more_proposers") else []
    except (ArchiveError, KeyError, TypeError) as exc:
        raise BadInput(f"{run_dir}: the run's records cannot be read: {exc}") from None
    finally:
        archive.close()
    rows = leaderboard_rows(candidates, card.reference_baseline, top, include_all=show_all)
    counts = status_counts(candidates)
    if as_json:
        click.echo(json.dumps({"run": run.as_dict(), "task": card.to_dict(), "counts": counts,
                               "rows": [r.as_dict() for r in rows],
                               **({"proposers": [dataclasses.asdict(r) for r in shares]} if shares else {})},
                              indent=2))
        return
    output = console()
    if not rows:
        output.print(f"run {run.run_id} has no scored candidate yet ({run.status}).")
        return
    output.print(render_table(rows, run, counts, card, show_errors=show_all))
    if shares:  # several proposers: each one's share and what it earned (the bandit's evidence)
        from llm2.report.proposer_shares import share_line

        click.echo("\n".join(share_line(share) for share in shares))


def _shares(archive, candidates, card):
    from llm2.archive.ranking import baseline
    from llm2.report.proposer_shares import proposer_shares

    reference = baseline(candidates, card.reference_baseline)
    return proposer_shares(candidates, reference.fitness if reference else None, archive.requests())
