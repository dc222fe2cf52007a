"""What several commands share: choosing a task and its settings, opening a run, the sandbox opt-out."""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from llm2.commands.exits import BadInput, WorkFailed

TASK_HELP = "The task: a registered name (see `llm2 tasks`), or path/to/task.py:ClassName."


class NoArchive(BadInput):
    """DIR holds no readable llm2 archive: a usage problem (exit code 2), shown without a traceback."""


def task_option(default: str | None = "preference-synthetic") -> Callable:
    return click.option("--task", "task_spec", default=default, show_default=default is not None, help=TASK_HELP)


def task_settings_option(function: Callable) -> Callable:
    return click.option("--task-option", "-o", "task_options", multiple=True, metavar="KEY=VALUE",
                        help="A setting of the task (repeatable); `llm2 tasks --task T` lists them.")(function)


def allow_missing_option(function: Callable) -> Callable:
    return click.option(
        "--allow-missing-sandbox-layer", "allow_missing", multiple=True, metavar="LAYER",
        help="Run candidates even where this sandbox layer cannot be applied (repeatable; UNSAFE, recorded). "
             "By default a candidate is refused when any layer is missing.")(function)


def evaluation_options(seeds_default: int, seeds_help: str, json_help: str) -> Callable:
    """``--seeds``, ``--workers``, ``--timeout`` and ``--json``: how `evaluate` and `heldout` spend their evaluations
    and where their results also go."""
    options = (
        click.option("--seeds", type=click.IntRange(min=1), default=seeds_default, show_default=True, help=seeds_help),
        click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel workers [default: cores]."),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
                     help="Seconds per evaluation."),
        click.option("--json", "json_path", type=click.Path(dir_okay=False), help=json_help),
    )

    def apply(function: Callable) -> Callable:
        for option in reversed(options):
            function = option(function)
        return function

    return apply


def world_secret_option(function: Callable) -> Callable:
    """``--world-secret FILE``: whose secret the synthetic worlds' hidden parts are drawn with (default: the one
    made at first use in the cache). Read, and its fingerprint published, before the command does anything."""
    def use(context: click.Context, parameter: click.Parameter, value: str | None) -> None:
        from llm2.task_api.world_secret import WorldSecretError, use_file

        try:
            use_file(value)
        except WorldSecretError as exc:
            raise click.BadParameter(str(exc), param_hint="--world-secret") from None
        except OSError as exc:  # the default secret cannot be made (no writable cache directory)
            raise click.BadParameter(f"cannot make the world secret: {exc}", param_hint="--world-secret") from None

    return click.option(
        "--world-secret", type=click.Path(dir_okay=False), default=None, expose_value=False, callback=use,
        metavar="FILE", help="The secret the synthetic worlds' hidden parts (gold reward, held-out data) are drawn "
        "with; share the file (mode 600) to get the same worlds on another machine [default: made at first use in "
        "the cache].")(function)


def load_task(spec: str):
    from llm2.task_api.registry import TaskNotFound
    from llm2.task_api.registry import load_task as load

    try:
        return load(spec)
    except TaskNotFound as exc:
        raise BadInput(str(exc)) from None


def parse_settings(task: Any, pairs: tuple[str, ...]) -> Any:
    """The task's settings from ``--task-option`` pairs (each key once)."""
    from llm2.task_api.settings import SettingsError, single_options

    try:
        return task.parse_settings(single_options(pairs))
    except SettingsError as exc:
        raise click.BadParameter(str(exc), param_hint="--task-option") from None


def sweep_settings(task: Any, pairs: tuple[str, ...]) -> list[Any]:
    """One settings record per combination of repeated keys (``-o seed=1 -o seed=2`` gives two)."""
    from llm2.task_api.settings import SettingsError, parse_option_pairs

    try:
        options = parse_option_pairs(pairs)
        keys = list(options)
        return [task.parse_settings(dict(zip(keys, values)))
                for values in itertools.product(*(options[k] for k in keys))]
    except SettingsError as exc:
        raise click.BadParameter(str(exc), param_hint="--task-option") from None


def check_layers(allow_missing: tuple[str, ...]) -> frozenset[str]:
    """Validate the opt-out's layer names and say loudly what it means."""
    from llm2.sandbox.limits import LAYERS

    unknown = sorted(set(allow_missing) - set(LAYERS))
    if unknown:
        raise click.BadParameter(f"unknown sandbox layer {unknown[0]!r}; the layers are: {', '.join(LAYERS)}",
                                 param_hint="--allow-missing-sandbox-layer")
    if allow_missing:
        click.echo(f"WARNING: candidates will run even without these sandbox layers: {', '.join(allow_missing)}. "
                   "This weakens the protection against hostile code and is recorded with every result.", err=True)
    return frozenset(allow_missing)


def open_run_archive(run_dir: Path, readonly: bool = True):
    """Open DIR's archive, or stop the command with a clear message and exit code 2."""
    from llm2.archive import Archive, ArchiveError

    try:
        return Archive.open(run_dir, readonly=readonly)
    except ArchiveError as exc:
        raise NoArchive(f"{exc}. Give the directory of a run made by `llm2 discover`.") from None


def run_task(archive) -> tuple[Any, Any, Any]:
    """(task, its settings, the recorded DiscoveryConfig) of an opened run; a clear error when unreadable."""
    from llm2.discovery.config import DiscoveryConfig
    from llm2.task_api.settings import SettingsError

    try:
        config = DiscoveryConfig.from_dict(archive.run.config)
    except (ValueError, TypeError) as exc:
        raise BadInput(f"the run's recorded config cannot be read: {exc}") from None
    task = load_task(config.task)
    try:
        settings = task.settings_from_dict(config.task_settings)
    except SettingsError as exc:
        raise BadInput(f"the run's recorded task settings cannot be read: {exc}") from None
    return task, settings, config


def run_card(archive):
    """The run's task card; for a run recorded before cards existed, the card of its task as installed now."""
    from llm2.task_api.card import TaskCard

    if archive.task_card:
        return TaskCard.from_dict(archive.task_card)
    task = load_task(archive.run.task)
    try:
        return TaskCard.of(task, task.settings_from_dict(archive.run.config.get("task_settings") or {}))
    except ValueError:
        return TaskCard.of(task)


def reopen_for_resume(run_dir: Path, changes: dict[str, Any]):
    """(config, archive) of a run to continue, with the CLI's allowed changes applied and each one announced."""
    from llm2.archive import ArchiveError
    from llm2.discovery.run import WorldSecretMismatch, reopen_run

    try:
        config, archive, changed = reopen_run(run_dir, changes)
    except (ArchiveError, WorldSecretMismatch) as exc:
        raise NoArchive(f"cannot resume {run_dir}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise BadInput(f"cannot resume {run_dir}: its recorded config is not usable: {exc}") from None
    for line in changed:
        click.echo(f"resume: changed {line} (recorded in the run's history)", err=True)
    if config.world_secret is None:
        click.echo("WARNING: this run was made before world secrets: a synthetic world is now drawn differently, so "
                   "its numbers from here on are not comparable with its earlier ones.", err=True)
    return config, archive


def hold_run_dir(run_dir: Path) -> None:
    """Make this process the one writer of ``run_dir`` until it ends; exit code 2 naming the holder otherwise."""
    from llm2.discovery.run_lock import RunDirBusy, hold

    try:
        hold(run_dir)
    except RunDirBusy as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        raise BadInput(f"cannot lock {run_dir}: {exc.strerror or exc}") from None


def require_run(run_dir: Path) -> None:
    """Stop with exit code 2 unless ``run_dir`` holds a run to continue (nothing is created)."""
    from llm2.archive import Archive

    if not Archive.exists(run_dir):
        raise NoArchive(f"cannot resume {run_dir}: there is no llm2 archive in it")


def refuse_existing_run(run_dir: Path) -> None:
    """Exit code 2 when ``run_dir`` already holds a run (a new run would otherwise overwrite nothing, but confuse)."""
    from llm2.archive import Archive

    if Archive.exists(run_dir):
        raise BadInput(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --run-dir")


def start_new_run(config, run_dir: Path, task):
    """The archive of a new run in ``run_dir``, created (with any missing parents) only now, after every check,
    and locked for this process; when creating fails, the folders this call made are removed again."""
    import shutil

    from llm2.archive import ArchiveError
    from llm2.discovery.run import create_run

    refuse_existing_run(run_dir)
    first_new = first_missing(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        hold_run_dir(run_dir)
        return create_run(config, run_dir, task)
    except BaseException as exc:
        if first_new is not None:
            shutil.rmtree(first_new, ignore_errors=True)
        if isinstance(exc, (FileExistsError, ArchiveError)):
            raise BadInput(str(exc)) from None
        if isinstance(exc, OSError):
            raise BadInput(f"cannot create the run in {run_dir}: {exc.strerror or exc}") from None
        raise


def first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet: what creating it would make."""
    return next((folder for folder in reversed((path, *path.parents)) if not folder.exists()), None)


def check_output_file(path: str | Path | None, option: str) -> None:
    """Exit code 2 now, before any work, when the file an option names could not be written (no such folder)."""
    if path is not None and not Path(path).parent.is_dir():
        raise click.BadParameter(f"no folder {Path(path).parent} to write {Path(path).name} in", param_hint=option)


@contextmanager
def failed_if_refused(archive: Any) -> Iterator[None]:
    """Resuming: a run whose restart is refused (a ClickException) is recorded as failed, and its archive closed."""
    try:
        yield
    except click.ClickException:
        archive.set_run_status("failed")
        archive.close()
        raise


def check_sandbox(allow_missing: Any) -> None:
    """The sandbox's preflight; exit code 1 with its reason when a protection the run needs is missing."""
    from llm2.sandbox.preflight import SandboxUnavailable, preflight

    try:
        preflight(frozenset(allow_missing))
    except SandboxUnavailable as exc:
        raise WorkFailed(str(exc)) from None
