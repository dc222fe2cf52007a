"""``llm2 heldout``: the best candidates of a run against the task's reference baseline on its held-out suite."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from llm2.commands.common import (allow_missing_option, check_layers, open_run_archive, run_task,
                                  world_secret_option)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many of the best candidates to test.")
@click.option("--seeds", type=click.IntRange(min=1), default=2, show_default=True,
              help="Training seeds per held-out setting.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel workers [default: cores].")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds per evaluation.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the verdicts as JSON.")
@allow_missing_option
@world_secret_option
def heldout(run_dir, top, seeds, workers, timeout, json_path, allow_missing) -> None:
    """Win rate against the reference with a 95 % interval and a paired test, off the discovery's setting."""
    from llm2.archive.ranking import baseline
    from llm2.commands.progress_display import progress_on_stderr
    from llm2.execution import make_executor
    from llm2.heldout import run_heldout
    from llm2.sandbox.preflight import SandboxUnavailable, preflight

    allowed = check_layers(allow_missing)
    archive = open_run_archive(run_dir, readonly=False)
    try:
        task, settings, config = run_task(archive)
        _warn_on_another_secret(config.world_secret)
        candidates = archive.best(top)
        reference = baseline(archive.candidates(), task.reference_baseline)
        if reference is None:
            raise click.ClickException(f"this run has no measured {task.reference_baseline} baseline to compare "
                                       "with")
        if not candidates:
            raise click.ClickException("this run has no successfully evaluated candidate yet")
        if not task.heldout_settings(settings):
            raise click.ClickException(f"task {task.name} defines no held-out settings for this run's settings")
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
    from llm2.tasks import world_secret

    if recorded is not None and recorded != world_secret.fingerprint():
        click.echo(f"WARNING: the run was made with the world secret {recorded}, this check uses "
                   f"{world_secret.fingerprint()}: its worlds differ, so the run's fitness column is not comparable "
                   "(give the run's secret with --world-secret FILE).", err=True)


def print_verdicts(verdicts) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    if not verdicts:
        return
    first = verdicts[0]
    table = Table(title=f"held-out suite: each candidate against {first.reference} on {first.fitness_name} "
                        "(pairs = settings × seeds)")
    for column in ("candidate", "run fitness", "pairs", "failed", "win rate [95 % CI]", "mean diff [95 % CI]",
                   "p (sign-flip)", "verdict", "other numbers vs the reference"):
        table.add_column(column)
    for v in verdicts:
        diff = "-" if v.test is None else f"{v.test.mean_diff:+.4f} [{v.test.ci_low:+.4f}, {v.test.ci_high:+.4f}]"
        p = "-" if v.test is None else f"{v.test.p_value:.3g}"
        others = "; ".join(f"{c.label}: {c.word}" + ("" if c.test is None else f" (p {c.test.p_value:.2g})")
                           for c in v.columns)
        table.add_row(v.name, f"{v.run_fitness:.4f}" if v.run_fitness is not None else "-", str(v.pairs),
                      str(v.failures), f"{v.win_rate:.2f} [{v.win_low:.2f}, {v.win_high:.2f}]", diff, p, v.verdict,
                      others)
    console.print(table)
    for v in verdicts:
        settings = Table(title=f"{v.name} and {v.reference} per held-out setting (mean over seeds)")
        settings.add_column("setting")
        keys = list(v.settings[0].candidate) if v.settings else []
        for key in keys:
            settings.add_column(f"{key}: {v.name} / {v.reference}")
        for row in v.settings:
            settings.add_row(row.setting, *(f"{_n(row.candidate[k])} / {_n(row.reference[k])}" for k in keys))
        console.print(settings)


def _n(value: float | str | None) -> str:
    return "—" if value is None else value if isinstance(value, str) else f"{value:.4f}"
