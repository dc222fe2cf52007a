"""``llm2 heldout``: the best candidates of a run against dpo on the task's held-out suite."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--top", type=int, default=3, show_default=True, help="How many of the best candidates to test.")
@click.option("--seeds", type=int, default=2, show_default=True, help="Training seeds per held-out setting.")
@click.option("--workers", type=int, default=None, help="Parallel workers [default: number of cores].")
@click.option("--timeout", type=float, default=60.0, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the verdicts as JSON.")
def heldout(run_dir, top, seeds, workers, timeout, json_path) -> None:
    """Win rate against dpo with a 95 % interval and a paired test, off the discovery's fitness setting."""
    from llm2.archive import Archive, ArchiveError
    from llm2.discovery.config import DiscoveryConfig
    from llm2.execution import make_executor
    from llm2.heldout import run_heldout
    from llm2.tasks import get_task
    from llm2.tasks.base import EvalSetting

    try:
        archive = Archive.open(run_dir)
    except ArchiveError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        config = DiscoveryConfig.from_dict(archive.run.config)
        candidates = archive.best(top)
        dpo = next((c for c in archive.candidates() if c.status == "baseline" and c.name == "dpo"), None)
        if dpo is None:
            raise click.ClickException("this run has no measured dpo baseline to compare with")
        if not candidates:
            raise click.ClickException("this run has no successfully evaluated candidate yet")
        task = get_task(config.task, **config.task_options)
        base = EvalSetting(beta=config.beta, world_seed=config.world_seed)
        with make_executor("local", task_name=config.task,
                           task_options=config.task_options, workers=workers, timeout_s=timeout) as executor:
            verdicts = run_heldout(task, archive, executor, candidates, dpo, base, seeds)
    finally:
        archive.close()
    print_verdicts(verdicts)
    if json_path:
        Path(json_path).write_text(json.dumps([asdict(v) for v in verdicts], indent=2), encoding="utf-8")


def print_verdicts(verdicts) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="held-out suite: each candidate against dpo (pairs = settings × seeds)")
    for column in ("candidate", "run fitness", "pairs", "failed", "win rate [95 % CI]", "mean diff [95 % CI]",
                   "p (sign-flip)", "verdict"):
        table.add_column(column)
    for v in verdicts:
        diff = "-" if v.test is None else f"{v.test.mean_diff:+.4f} [{v.test.ci_low:+.4f}, {v.test.ci_high:+.4f}]"
        p = "-" if v.test is None else f"{v.test.p_value:.3g}"
        table.add_row(v.name, f"{v.run_fitness:.4f}" if v.run_fitness is not None else "-", str(v.pairs),
                      str(v.failures), f"{v.win_rate:.2f} [{v.win_low:.2f}, {v.win_high:.2f}]", diff, p, v.verdict)
    Console(width=160).print(table)
