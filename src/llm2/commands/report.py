"""``llm2 report DIR``: write DIR/report/index.html, a self-contained page about the run (works offline)."""

from __future__ import annotations

from pathlib import Path

import click

from llm2.commands.exits import BadInput


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--top", type=int, default=4, show_default=True,
              help="How many of the best candidates the task's figures draw beside its reference.")
def report(run_dir: Path, top: int) -> None:
    """Write RUN_DIR/report/index.html: run, leaderboard, discovery curve, the task's figures, failures.

    Safe to run while the discovery is still going: the archive is only read.
    """
    from llm2.archive import ArchiveError
    from llm2.report.build import build_report

    if top < 1:
        raise click.BadParameter(f"must be at least 1, not {top}", param_hint="--top")
    try:
        index = build_report(run_dir, top=top)
    except ArchiveError as exc:
        raise BadInput(f"{exc} (is {run_dir} a run directory of llm2 discover?)") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write the report: {exc}") from None
    click.echo(f"wrote {index}")
    click.echo(f"open it with: xdg-open {index}   (or any browser; it loads nothing from the network)")
