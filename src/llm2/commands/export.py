"""``llm2 export DIR --top N --out FILE.py``: a run's best algorithms as a plain Python module."""

from __future__ import annotations

from pathlib import Path

import click

from llm2.commands.common import NoArchive, open_run_archive, run_task


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many of the best successfully evaluated candidates to export.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The Python file to write.")
def export(run_dir: Path, top: int, out_path: Path) -> None:
    """Write the best algorithms of the run in RUN_DIR as a Python module (each loadable as FILE.py:NAME).

    The candidates' code is rewritten, never run: it passes the static checks first.
    """
    from llm2.archive import ArchiveError
    from llm2.archive.export import export_entries

    archive = open_run_archive(run_dir)
    try:
        run, best = archive.run, archive.best(top)
        task, _, _ = run_task(archive)
    finally:
        archive.close()
    if not best:
        raise NoArchive(f"run {run.run_id} in {run_dir} has no successfully evaluated candidate to export yet")
    try:
        entries = export_entries(best, run, task)
    except ArchiveError as exc:
        raise click.ClickException(str(exc)) from None
    text = task.export_module(entries, run, out_path.name)
    compile(text, str(out_path), "exec")  # parses only: a bug here must not leave a broken file behind
    out_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = out_path.with_name(out_path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(out_path)
    click.echo(f"wrote {len(entries)} function(s) to {out_path}: {', '.join(e.function_name for e in entries)}")
    click.echo(f"evaluate one with: llm2 evaluate --task {run.task} --objective-file "
               f"{out_path}:{entries[0].function_name}")
