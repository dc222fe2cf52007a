"""``llm2 export DIR --top N --out FILE.py``: a run's best algorithms as a plain Python module; with
``--checkpoints``, also the weights they trained (kept by ``llm2 discover --keep-checkpoints N``) in the task's
usual format (Hugging Face for the preference-hf task), each with a model card."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from llm2.commands.common import NoArchive, first_missing, open_run_archive, run_task
from llm2.commands.exits import BadInput, WorkFailed
from llm2.discovery import checkpoints
from llm2.files import write_text
from llm2.task_api.optional import optional


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many of the best successfully evaluated candidates to export.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The Python file to write.")
@click.option("--checkpoints", "checkpoints_too", is_flag=True,
              help="Also write the kept trained weights of those candidates, one folder each with a model card, "
                   "in OUT's name without .py plus -checkpoints (run discover with --keep-checkpoints N first).")
def export(run_dir: Path, top: int, out_path: Path, checkpoints_too: bool) -> None:
    """Write the best algorithms of the run in RUN_DIR as a Python module (each loadable as FILE.py:NAME).

    The candidates' code is rewritten, never run: it passes the static checks first.
    """
    from llm2.archive import ArchiveError
    from llm2.archive.export import export_entries
    from llm2.archive.ranking import baseline

    archive = open_run_archive(run_dir)
    try:
        run, best = archive.run, archive.best(top)
        task, settings, config = run_task(archive)
        reference = baseline(archive.candidates(), task.reference_baseline)
    finally:
        archive.close()
    if not best:
        raise NoArchive(f"run {run.run_id} in {run_dir} has no successfully evaluated candidate to export yet")
    try:
        entries = export_entries(best, run, task)
        text = task.export_module(entries, run, out_path.name)
    except ArchiveError as exc:
        raise WorkFailed(str(exc)) from None
    compile(text, str(out_path), "exec")  # parses only: a bug here must not leave a broken file behind
    if out_path.is_dir():
        raise BadInput(f"--out {out_path} is a folder; give the path of the .py file to write")
    folder = out_path.with_name(out_path.name.removesuffix(".py") + "-checkpoints")
    seed = config.training_seeds()[0]
    kept = {e.function_name: checkpoints.kept(run_dir, e.candidate.id, seed) for e in entries} if checkpoints_too \
        else {}
    if checkpoints_too and not any(kept.values()):
        raise BadInput(f"run {run.run_id} kept no weights of these candidates; run llm2 discover with "
                       "--keep-checkpoints N to keep them")
    # Everything is checked: only now are folders made, and all of them go again if a write fails.
    made = {first_missing(out_path.parent), first_missing(folder) if checkpoints_too else None} - {None}
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        written = export_checkpoints(folder, entries, kept, task, settings, run, seed, reference, out_path.name) \
            if checkpoints_too else []
        write_text(out_path, text)  # atomically
    except BaseException as exc:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BadInput(f"cannot write {out_path}: {exc.strerror or exc}") from None
        raise
    click.echo(f"wrote {len(entries)} function(s) to {out_path}: {', '.join(e.function_name for e in entries)}")
    click.echo(f"evaluate one with: llm2 evaluate --task {run.task} --objective-file "
               f"{out_path}:{entries[0].function_name}")
    for path in written:
        click.echo(f"wrote checkpoint {path}")
    missing = [name for name, path in kept.items() if path is None]
    if missing:
        click.echo(f"no kept weights for {', '.join(missing)} (keep them with llm2 discover --keep-checkpoints N)",
                   err=True)


def export_checkpoints(folder: Path, entries, kept: dict, task, settings, run, seed: int, reference,
                       module_name: str) -> list[str]:
    """Each kept entry's weights through the task's ``export_checkpoint``, plus a model card (README.md)."""
    written = []
    for entry in entries:
        if kept.get(entry.function_name) is None:
            continue
        target = folder / entry.function_name
        target.mkdir(parents=True, exist_ok=True)
        try:
            facts = optional(task, "export_checkpoint")(checkpoints.load(kept[entry.function_name]), settings, target)
        except NotImplementedError as exc:
            raise BadInput(f"cannot export checkpoints: {exc}") from None
        except (OSError, ValueError) as exc:
            raise WorkFailed(f"exporting the weights of {entry.function_name} failed: {exc}") from None
        card = model_card(entry, task, settings, run, seed, reference, module_name, facts or {})
        (target / "README.md").write_text(card, encoding="utf-8")
        written.append(str(target))
    return written


def model_card(entry, task, settings, run, seed: int, reference, module_name: str, facts: dict) -> str:
    """A Hugging Face model card: YAML front matter, then the objective, its code and its scores."""
    import dataclasses
    import json

    from llm2.commands.terminal import spread_text

    candidate = entry.candidate
    seeds = run.config.get("seeds")
    fitness_text = spread_text(candidate.fitness, candidate.fitness_std, seeds)
    texts = task.texts_for(settings)
    header = {"library_name": facts.get("library_name", "transformers"), "tags": ["llm2", *facts.get("tags", [])]}
    if facts.get("base_model"):
        header["base_model"] = facts["base_model"]
    front = "\n".join(f"{key}: {json.dumps(value)}" for key, value in header.items())
    numbers = task.metrics_text(candidate.metrics)
    reference_line = (f"- {task.reference_baseline} (the reference objective) in the same run: "
                      f"{spread_text(reference.fitness, reference.fitness_std, seeds)}\n"
                      if reference is not None else "")
    settings_text = json.dumps(dataclasses.asdict(settings), indent=2, sort_keys=True)
    thought = candidate.thought.strip() or "(no thought recorded)"
    return f"""---
{front}
---

# {entry.function_name}

Trained with **{candidate.name}**, a {task.texts.kind} discovered by llm2 (run {run.run_id}, task {run.task},
candidate #{candidate.id}, generation {candidate.generation}). These weights come from training seed {seed}; the
scores below are means over the run's training seeds.

{facts.get("usage", "").strip()}

## Scores

- {texts.fitness_name}: {fitness_text}{f" ({numbers})" if numbers else ""}
{reference_line}
Fitness: {" ".join(texts.fitness.split())}.

## The objective

{thought}

```python
{entry.source.strip()}
```

The same function is in `{module_name}`, exported beside this folder.

## Training settings

```json
{settings_text}
```
"""
