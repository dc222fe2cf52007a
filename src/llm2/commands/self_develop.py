"""``llm2 self-develop``: the algorithm factory refined on its own algorithms (Self-Developing, Ishibashi et al.
2024), and with ``--factory-objective`` trained by a loss llm2 discovered (LLM²)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from llm2.commands.common import (
    allow_missing_option,
    check_layers,
    check_sandbox,
    failed_if_refused,
    hold_run_dir,
    load_task,
    parse_settings,
    reopen_for_resume,
    start_new_run,
    task_option,
    task_settings_option,
    world_secret_option,
)
from llm2.commands.exits import STOPPED, BadInput, Interrupted, WorkFailed
from llm2.numbers import decimal_text

# Options a resumed run may be given (how it runs, not what it does); any other one would change the plan.
RESUMABLE_OPTIONS = ("run_dir", "resume", "workers", "timeout")


@click.command()
@task_option()
@task_settings_option
@click.option("--factory", default="default", show_default=True,
              help="The seed factory: 'default' (a tiny model llm2 builds offline from the task's own offline "
                   "proposer, cached), a Hugging Face causal LM (directory or cached id), or a factory checkpoint "
                   "(DIR/selfdev/iteration-K/factory of another run).")
@click.option("--factory-option", "factory_options", multiple=True, metavar="KEY=VALUE",
              help="A setting of the default factory's build (repeatable): programs, chains, baseline_copies, "
                   "vocab_size, layers, width, heads, steps, batch_size, lr, seed.")
@click.option("--iterations", type=click.IntRange(min=0), default=3, show_default=True,
              help="Refinements of the factory; samples are drawn at iterations 0..N.")
@click.option("--samples", type=click.IntRange(min=2), default=64, show_default=True,
              help="Algorithms the factory writes per iteration.")
@click.option("--temperature", default="1.2:0.85", show_default=True,
              help="Sampling temperature per iteration: START:END (linear), a comma-separated list with one value "
                   "per iteration, or one number.")
@click.option("--chosen-top", type=click.FloatRange(min=0, max=0.5, min_open=True), default=0.03, show_default=True,
              help="Chosen: the best this share of the iteration's scored algorithms.")
@click.option("--rejected-bottom", type=click.FloatRange(min=0, max=0.5, min_open=True), default=0.10,
              show_default=True, help="Rejected: the worst this share of the pool.")
@click.option("--rejected-pool", type=click.Choice(["all", "valid"]), default="all", show_default=True,
              help="Rank the rejected among all the iteration's algorithms, those that failed lowest (all), or "
                   "among the scored ones only (valid).")
@click.option("--factory-objective", default=None, metavar="NAME_OR_FILE",
              help="Train the factory with this preference objective instead of TRL's DPO: a catalog name "
                   "(`llm2 objectives`) or FILE.py:NAME (e.g. from `llm2 export`).")
@click.option("--tuning", type=click.Choice(["auto", "full", "lora"]), default="auto", show_default=True,
              help="auto: LoRA for factories above 100M parameters, full fine-tuning below.")
@click.option("--beta", type=click.FloatRange(min=0, min_open=True), default=None,
              help="β of the preference loss [default: 0.01 with LoRA, as in the paper; 0.1 in full].")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Passes over an iteration's pairs [default: 2 with LoRA, 4 in full].")
@click.option("--learning-rate", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=None,
              help="[default: 1e-4 with LoRA, 1e-3 in full].")
@click.option("--sft-weight", type=click.FloatRange(min=0), default=None,
              help="Add this weight times the chosen completions' NLL to the DPO loss (iterative RPO; 0: plain "
                   "DPO) [default: 1]; not with --factory-objective.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None,
              help="Longest completion the factory may write [default: 256 for the default factory, 1024 for a "
                   "model, which answers in the discovery's JSON with its thoughts].")
@click.option("--no-refine", "control", is_flag=True,
              help="A control run: sample the same way at every iteration but never train the factory.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sampling and training.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Training seeds per algorithm (fitness is their mean).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Local workers [default: number of cores].")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds one evaluation may take before it is killed.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--resume", is_flag=True, help="Continue the self-develop run stored in --run-dir.")
@allow_missing_option
@world_secret_option
@click.pass_context
def self_develop(ctx, task_spec, task_options, factory, factory_options, iterations, samples, temperature,
                 chosen_top, rejected_bottom, rejected_pool, factory_objective, tuning, beta, epochs, learning_rate,
                 sft_weight, max_new_tokens, control, seed, seeds, workers, timeout, run_dir, resume,
                 allow_missing) -> None:
    """Refine an algorithm factory on its own algorithms: per iteration it writes --samples algorithms, they are
    evaluated, and it is trained with DPO on (best, worst) pairs of its own output."""
    from llm2.files import write_json
    from llm2.selfdev_files import RunFiles
    from llm2.selfdev.quiet import quiet_hf

    allowed = check_layers(allow_missing)
    quiet_hf()
    if resume:
        if run_dir is None:
            raise click.UsageError("--resume needs --run-dir DIR")
        given = {name for name in ctx.params
                 if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
        refused = sorted(given - set(RESUMABLE_OPTIONS))
        if refused:
            raise click.UsageError(f"a resumed run keeps its plan; drop --{_option_name(ctx, refused[0])}")
        plan, config, task, archive = _reopen(run_dir, workers, timeout if "timeout" in given else None)
        with failed_if_refused(archive):
            _start(plan, config, task, run_dir)
    else:
        task = load_task(task_spec)
        settings = parse_settings(task, task_options)
        plan = _plan(task, ctx.params)
        run_dir = run_dir or _default_run_dir()
        config = _config(task_spec, settings, plan, seeds, workers, timeout, allowed)
        if RunFiles(run_dir).plan.exists():
            raise BadInput(f"{run_dir} already holds a self-develop run; pass --resume to continue it")
        _start(plan, config, task, run_dir)  # every check before the run directory exists
        archive = start_new_run(config, run_dir, task)
        write_json(RunFiles(run_dir).plan, plan.to_dict())
    summary = _run(plan, config, task, archive, run_dir)
    _print_summary(summary, run_dir, task)
    if summary.status != "finished":
        sys.exit(STOPPED)


def _option_name(ctx, parameter: str) -> str:
    option = next(p for p in ctx.command.params if p.name == parameter)
    return max(option.opts, key=len).lstrip("-")


def _plan(task, options: dict):
    """The run's plan from the command's options (``ctx.params``); a usage error names the option at fault."""
    from llm2.selfdev.default_factory import TinyFactoryConfig
    from llm2.selfdev.factory import DEFAULT
    from llm2.selfdev.plan import SelfDevPlan, TrainingRecipe, temperature_schedule
    from llm2.task_api.settings import SettingsError, single_options
    from llm2.task_api.settings import parse_settings as parse_dataclass

    factory, factory_options, objective = options["factory"], options["factory_options"], options["factory_objective"]
    iterations, temperature, beta = options["iterations"], options["temperature"], options["beta"]
    if factory != DEFAULT and Path(factory).exists():
        factory = str(Path(factory).resolve())  # a resumed run may start elsewhere
    if factory_options and factory != DEFAULT:
        raise click.UsageError("--factory-option sets up the default factory; drop it with --factory MODEL")
    if factory != DEFAULT:
        from llm2.selfdev.factory import FactoryError, check_factory

        try:
            check_factory(factory)
        except FactoryError as exc:
            raise click.BadParameter(str(exc), param_hint="--factory") from None
    try:
        factory_config = parse_dataclass("default factory", TinyFactoryConfig, single_options(factory_options))
    except SettingsError as exc:
        raise click.BadParameter(str(exc), param_hint="--factory-option") from None
    if factory == DEFAULT and not task.offline_proposer:
        raise click.UsageError(f"task {task.name} has no offline proposer to build the default factory from; "
                               "give a model with --factory")
    if objective is not None:
        _check_objective(objective, beta)
    try:
        temperatures = temperature_schedule(temperature, iterations)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--temperature") from None
    try:
        recipe = TrainingRecipe(objective=objective, beta=beta,
                                **{k: options[k] for k in ("tuning", "epochs", "learning_rate", "sft_weight")})
        return SelfDevPlan(factory=factory, factory_config=dataclasses.asdict(factory_config) if factory == DEFAULT
                           else {}, iterations=iterations, temperatures=temperatures, refine=not options["control"],
                           recipe=recipe, max_new_tokens=options["max_new_tokens"] or (256 if factory == DEFAULT
                                                                                       else 1024),
                           **{k: options[k] for k in ("samples", "chosen_top", "rejected_bottom", "rejected_pool",
                                                      "seed")})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _check_objective(objective: str, beta: float | None) -> None:
    """The objective is loaded and called once now, so a typo fails before any evaluation is spent."""
    from llm2.tasks.preference.trl import check_objective, resolve_objective

    try:
        check_objective(resolve_objective(objective), beta or 0.1, 4)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--factory-objective") from None


def _default_run_dir() -> Path:
    import time

    return Path("runs") / f"selfdev-{time.strftime('%Y%m%d-%H%M%S')}"


def _config(task_spec, settings, plan, seeds, workers, timeout, allowed):
    from llm2.discovery.config import DiscoveryConfig
    from llm2.selfdev.sampling import PROPOSER_NAME
    from llm2.task_api import world_secret

    try:
        # What every other command reads: generation = iteration + 1, population = samples per iteration.
        return DiscoveryConfig(
            task=task_spec, task_settings=dataclasses.asdict(settings), proposer=PROPOSER_NAME,
            proposer_options={"model": plan.factory}, generations=plan.iterations + 1, population=plan.samples,
            temperature=plan.temperatures[0], seed=plan.seed, seeds=seeds, workers=workers, timeout_s=timeout,
            allow_missing=tuple(sorted(allowed)), world_secret=world_secret.fingerprint())
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _reopen(run_dir: Path, workers, timeout):
    from llm2.files import read_json
    from llm2.selfdev_files import RunFiles
    from llm2.selfdev.plan import SelfDevPlan

    files = RunFiles(run_dir)
    if not files.plan.is_file():
        raise BadInput(f"{run_dir} holds no self-develop run (no {files.plan.relative_to(run_dir)})")
    hold_run_dir(run_dir)  # before anything is read to continue: a second writer stops here
    try:
        plan = SelfDevPlan.from_dict(read_json(files.plan))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise BadInput(f"cannot resume {run_dir}: its plan is not readable: {exc}") from None
    config, archive = reopen_for_resume(run_dir, {"workers": workers, "timeout_s": timeout})
    return plan, config, load_task(config.task), archive


def _start(plan, config, task, run_dir: Path) -> None:
    """Check the sandbox and the settings and build the task's world; exit code 2 for bad settings, 1 otherwise."""
    check_sandbox(config.allow_missing)
    try:
        settings = task.settings_from_dict(config.task_settings)
    except (ValueError, KeyError) as exc:
        raise BadInput(str(exc).strip("'\"")) from None
    _echo(f"task {config.task} ({task.setting_text(settings)}), factory {plan.factory}, {plan.iterations} "
          f"iteration(s) of {plan.samples} samples{'' if plan.refine else ', control (no refinement)'}, run {run_dir}")
    try:
        task.prepare(settings)
    except (ValueError, OSError) as exc:
        raise WorkFailed(f"task {task.name} cannot prepare {task.setting_text(settings)}: {exc}") from None


def _echo(line: str) -> None:
    click.echo(f"llm2 self-develop: {line}", err=True)


def _run(plan, config, task, archive, run_dir: Path):
    from llm2.discovery.run import run_executor
    from llm2.selfdev.develop import SelfDevelopment
    from llm2.selfdev.factory import FactoryError
    from llm2.selfdev_files import RunFiles

    settings = task.settings_from_dict(config.task_settings)
    with run_executor(config, task, settings, run_dir) as executor:
        loop = SelfDevelopment(plan, config, task, archive, executor, RunFiles(run_dir), _echo)
        try:
            return loop.run()
        except FactoryError as exc:
            archive.set_run_status("stopped")
            raise WorkFailed(f"{exc}; after fixing it, continue with: llm2 self-develop --run-dir "
                             f"{run_dir} --resume") from None
        except KeyboardInterrupt:
            archive.set_run_status("stopped")
            raise Interrupted(f"interrupted; continue with: llm2 self-develop --run-dir {run_dir} --resume") \
                from None
        finally:
            archive.close()


def _print_summary(summary, run_dir: Path, task) -> None:
    from rich.table import Table

    from llm2.commands.terminal import console

    table = Table(title=f"self-develop: the factory's samples per iteration (fitness: {summary.fitness_name})")
    for column in ("iteration", "temperature", "valid", "mean", "median", "top decile", "best", "pairs"):
        table.add_column(column, justify="right" if column != "best" else "left")
    for s in summary.iterations:
        table.add_row(str(s.iteration), f"{s.temperature:g}", f"{s.valid}/{s.samples} ({s.valid_share:.0%})",
                      _n(s.mean), _n(s.median), _n(s.top_decile),
                      f"{_n(s.best_fitness)} {s.best_name or ''}", str(s.pairs))
    console().print(table)
    best, reference = summary.best, summary.reference
    if best is not None and reference is not None and reference.fitness is not None:
        verdict = "beats" if best.fitness > reference.fitness else "does not beat"
        click.echo(f"Best: {best.name} {best.fitness:.4f} {verdict} {reference.name} {reference.fitness:.4f} at this "
                   f"one setting (check it off this setting with: llm2 heldout {run_dir}).")
    click.echo(f"Run stored in {run_dir} (archive.sqlite; the factory per iteration, pairs and statistics under "
               f"{run_dir}/selfdev)")
    click.echo(f"Report: llm2 report {run_dir}    Leaderboard: llm2 leaderboard {run_dir}")


def _n(value) -> str:
    return decimal_text(value, missing="-")
