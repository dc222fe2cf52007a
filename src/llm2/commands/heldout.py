"""``llm2 heldout``: the best candidates of a run against the task's reference baseline on its held-out suite."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from llm2.commands.common import (allow_missing_option, check_layers, check_output_file, evaluation_options,
                                  open_run_archive, run_task, world_secret_option)
from llm2.commands.exits import BadInput
from llm2.commands.terminal import add_name_column, console


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many of the best candidates to test.")
@evaluation_options(2, "Training seeds per held-out setting.", "Also write the verdicts as JSON.")
@allow_missing_option
@world_secret_option
def heldout(run_dir, top, seeds, workers, timeout, json_path, allow_missing) -> None:
    """The best candidates against the reference off the discovery's setting, the setting as the unit of evidence;
    on the reference's frontier for a task with a trade-off (docs/verdicts.md)."""
    from llm2.archive.ranking import baseline
    from llm2.commands.progress_display import progress_on_stderr
    from llm2.execution import make_executor
    from llm2.heldout import run_heldout
    from llm2.sandbox.preflight import SandboxUnavailable, preflight

    allowed = check_layers(allow_missing)
    check_output_file(json_path, "--json")
    archive = open_run_archive(run_dir, readonly=False)
    try:
        task, settings, config = run_task(archive)
        _warn_on_another_secret(config.world_secret)
        candidates = archive.best(top)
        reference = baseline(archive.candidates(), task.reference_baseline)
        if reference is None:
            raise BadInput(f"this run has no measured {task.reference_baseline} baseline to compare with")
        if not candidates:
            raise BadInput("this run has no successfully evaluated candidate yet")
        if not task.heldout_settings(settings):
            raise BadInput(f"task {task.name} defines no held-out settings for this run's settings")
        try:
            preflight(allowed | frozenset(config.allow_missing))
        except SandboxUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        with make_executor("local", task_spec=config.task, task=task, workers=workers, timeout_s=timeout,
                           allow_missing=allowed | frozenset(config.allow_missing)) as executor:
            with progress_on_stderr():
                verdicts = run_heldout(task, archive, executor, candidates, reference, settings, seeds)
    finally:
        archive.close()
    print_verdicts(verdicts)
    if json_path:
        Path(json_path).write_text(json.dumps([asdict(v) for v in verdicts], indent=2), encoding="utf-8")


def _warn_on_another_secret(recorded: str | None) -> None:
    from llm2.task_api import world_secret

    if recorded is not None and recorded != world_secret.fingerprint():
        click.echo(f"WARNING: the run was made with the world secret {recorded}, this check uses "
                   f"{world_secret.fingerprint()}: its worlds differ, so the run's fitness column is not comparable "
                   "(give the run's secret with --world-secret FILE).", err=True)


def print_verdicts(verdicts) -> None:
    from rich.table import Table

    from llm2.archive.text import shown  # candidate names are untrusted text: no markup of theirs reaches the screen

    output = console()
    if not verdicts:
        return
    first = verdicts[0]
    for v in verdicts:  # the headline first: for a task with a trade-off it is the frontier verdict
        output.print(f"[bold]{shown(v.name)}[/bold]: {shown(v.headline)}")
        for line in (v.frontier[1:] if v.frontier else ()):
            output.print(f"  also: {shown(line.text)}")
        if v.frontier:
            output.print(f"  single point: {shown(v.verdict)}")
    table = Table(title=f"held-out suite: each candidate against {shown(first.reference)} on "
                        f"{shown(first.fitness_name)} (the unit of evidence is the setting; seeds measure noise "
                        "within one)")
    add_name_column(table, "candidate")
    for column in ("run fitness", "settings", "seeds", "failed", "mean diff [95 % CI]",
                   "p (sign-flip over settings)", "verdict", "other numbers vs the reference"):
        table.add_column(column, overflow="fold")
    for v in verdicts:
        e = v.evidence
        diff = "-" if e is None else f"{e.mean_diff:+.4f} [{e.ci_low:+.4f}, {e.ci_high:+.4f}]"
        others = "; ".join(f"{c.label}: {c.word}" + ("" if c.evidence is None else f" (p {c.evidence.p_value:.2g})")
                           for c in v.columns)
        table.add_row(shown(v.name), f"{v.run_fitness:.4f}" if v.run_fitness is not None else "-", str(v.settings),
                      "deterministic" if v.deterministic else str(v.seeds), str(v.failures), diff,
                      "-" if e is None else f"{e.p_value:.3g}", v.word, shown(others))
    output.print(table)
    for v in verdicts:
        settings = Table(title=f"{shown(v.name)} and {shown(v.reference)} per held-out setting (mean over seeds)")
        add_name_column(settings, "setting")
        keys = list(v.rows[0].candidate) if v.rows else []
        for key in keys:
            settings.add_column(f"{key}: {shown(v.name)} / {shown(v.reference)}", overflow="fold")
        for row in v.rows:
            settings.add_row(shown(row.setting), *(f"{_n(row.candidate[k])} / {_n(row.reference[k])}" for k in keys))
        output.print(settings)


def _n(value: float | str | None) -> str:
    return "—" if value is None else value if isinstance(value, str) else f"{value:.4f}"
