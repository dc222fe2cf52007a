"""``llm2 discover``: run (or resume) a discovery and print its leaderboard."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from llm2.commands.common import (NoArchive, allow_missing_option, check_layers, check_sandbox, failed_if_refused,
                                  hold_run_dir, load_task, parse_settings, refuse_existing_run, reopen_for_resume, require_run,
                                  start_new_run, task_option, task_settings_option, world_secret_option)
from llm2.commands.discover_proposers import (MODEL_PROPOSERS, choose_proposers, proposer_options,  # noqa: F401
                                              several_proposers)
from llm2.commands.exits import STOPPED, BadInput, Interrupted, WorkFailed
from llm2.discovery.config import DiscoveryConfig

DEFAULTS = DiscoveryConfig()
@click.command()
@task_option()
@task_settings_option
@click.option("--proposer", "proposers", multiple=True,
              help="symbolic, openai, hf, replay, or a task's own [default: the task's offline proposer]. Given "
              "again (NAME, or NAME:FILE for replay, NAME:MODEL for openai and hf, sharing the other options; "
              "openai:MODEL@URL for a model at its own server), a bandit picks which proposer writes each proposal "
              "from the improvement each earned per dollar (per evaluation second without prices).")
@click.option("--proposer-config", "proposer_config", type=click.Path(dir_okay=False, path_type=Path),
              help="A TOML or JSON file listing proposers ([[proposer]] tables: name, model, base_url, api_key_env, "
              "replay, price_prompt, price_completion, request_timeout, max_tokens, images, image_tokens), each with "
              "its own server, model and key; they come after any --proposer, and the other options on the command "
              "line are their defaults (docs/cli.md).")
@click.option("--model", help="Model name (openai) or local path / hub id (hf).")
@click.option("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 for vLLM.")
@click.option("--api-key-env", default=None, help="Environment variable holding the API key [default: "
              "OPENAI_API_KEY] (the key itself is never recorded).")
@click.option("--replay", "replay", type=click.Path(dir_okay=False), help="JSONL of replies for --proposer replay.")
@click.option("--generations", type=click.IntRange(min=1), default=None,
              help=f"Generations to run [default: {DEFAULTS.generations}]; on --resume, a new total.")
@click.option("--population", type=click.IntRange(min=1), default=DEFAULTS.population, show_default=True,
              help="Proposals per generation, evaluated side by side.")
@click.option("--history", type=click.Choice(["full", "topk"]), default=DEFAULTS.history, show_default=True)
@click.option("--top-k", type=click.IntRange(min=1), default=DEFAULTS.top_k, show_default=True)
@click.option("--context-tokens", type=click.IntRange(min=64), default=None,
              help="The proposer's context in tokens: the prompt is kept within it (the task card, the best and the "
              "latest results first, a curve picture's tokens counted, older ones in a line each) [default: what the "
              "server reports, else unbounded; a prompt the server refuses as too long is sent again without its "
              "picture, else shrunk].")
@click.option("--temperature", type=click.FloatRange(min=0), default=DEFAULTS.temperature, show_default=True)
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True, help="Seed of the proposer's requests.")
@click.option("--seeds", type=click.IntRange(min=1), default=DEFAULTS.seeds, show_default=True,
              help="Training seeds per candidate.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--resume", is_flag=True, help="Continue the run stored in --run-dir.")
@click.option("--prompt-dir", type=click.Path(file_okay=False, exists=True), help="Directory overriding prompt files.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=DEFAULTS.executor, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Local workers [default: number of cores].")
@click.option("--ray-address", default=None, help="Ray cluster address (default: start a local instance).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS.timeout_s,
              show_default=True, help="Seconds one evaluation may take before it is killed.")
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds one proposer request may take in all (openai) [default: 120].")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="Longest reply the proposer may write.")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None,
              help="Stop cleanly before the proposer's next request would cost more than this many USD in all.")
@click.option("--price-prompt", type=click.FloatRange(min=0), default=None, help="USD per 1k prompt tokens.")
@click.option("--price-completion", type=click.FloatRange(min=0), default=None, help="USD per 1k completion tokens.")
@click.option("--keep-checkpoints", type=click.IntRange(min=0), default=DEFAULTS.keep_checkpoints, show_default=True,
              metavar="N", help="Keep the trained weights of the N best candidates (first training seed) in "
              "RUN_DIR/checkpoints, for llm2 export --checkpoints (local executor).")
@click.option("--rungs", is_flag=True, help="Multi-fidelity: evaluate every candidate first on the task's lower "
              "rungs (a share of training, fewer seeds) and promote only the best third to the full evaluation.")
@click.option("--race/--no-race", default=DEFAULTS.race, show_default=True,
              help="Seed racing: train every proposal on its first training seed, and its other seeds only if it "
              "could still be the best (its first seed within the largest rise to a full evaluation seen so far); "
              "the clearly worse stop after one seed.")
@click.option("--islands", type=click.IntRange(min=1), default=DEFAULTS.islands, show_default=True,
              help="Sub-populations, each with its own conversation and parents; the proposals of a generation are "
              "dealt round them.")
@click.option("--migrate-every", type=click.IntRange(min=1), default=DEFAULTS.migrate_every, show_default=True,
              metavar="M", help="With --islands: every M generations each island's best moves to the next island "
              "and the weakest island is reset to the others' best.")
@click.option("--advice-every", type=click.IntRange(min=0), default=DEFAULTS.advice_every, show_default=True,
              metavar="G", help="Every G generations the proposer rewrites the advice part of its prompt; the new "
              "advice is kept only if the proposals under it do at least as well (0: never).")
@click.option("--map-elites", is_flag=True, help="Parents are drawn across the cells of the task's behaviour "
              "grid (the best candidate of each cell), not only by fitness; the report draws the grid.")
@click.option("--temperature-schedule", "temperature_schedule", multiple=True, metavar="[PROPOSER=]SCHEDULE",
              help="The requests' temperature as the run goes on, per proposer and per island: T (constant), "
              "linear:A:B or cosine:A:B (from A at the first generation to B at the last), or islands:S0,S1,... "
              "(one of those per island); PROPOSER (a label such as openai:MODEL, or a name) limits it to that "
              "proposer. Recorded with each request [default: --temperature throughout].")
@click.option("--send-curve-images", "send_curve_images", is_flag=True,
              help="With --proposer openai and a model that reads images: send the plot of the latest candidate's "
              "training curves (drawn by llm2 from the recorded numbers) with its feedback.")
@click.option("--image-tokens", type=click.IntRange(min=0), default=None, metavar="N",
              help="With --send-curve-images: the prompt tokens your server counts for one picture, in the prompt "
              "budget [default: estimated from its pixel size, 85 + 170 per 512-pixel tile].")
@allow_missing_option
@world_secret_option
def discover(task_spec, task_options, proposers, proposer_config, model, base_url, api_key_env, replay, generations,
             population, history, top_k, context_tokens, temperature, seed, seeds, run_dir, resume, prompt_dir, executor,
             workers, ray_address, timeout, request_timeout, max_tokens, max_cost, price_prompt, price_completion,
             keep_checkpoints, rungs, race, islands, migrate_every, advice_every, map_elites, temperature_schedule,
             send_curve_images, image_tokens, allow_missing) -> None:
    """Let a proposer invent algorithms for a task; with no options, a short offline run on the built-in task and
    its offline proposer."""
    from llm2.archive import ArchiveError
    from llm2.discovery.run import default_run_dir
    from llm2.task_api import world_secret
    from llm2.task_api.optional import optional

    allowed = check_layers(allow_missing)
    if resume and (len(proposers) > 1 or proposer_config):
        raise click.UsageError("a resumed run keeps its proposers; give --proposer once at most")
    if resume and temperature_schedule:
        raise click.UsageError("a resumed run keeps its temperature schedule; drop --temperature-schedule")
    cli_proposer = dict(model=model, base_url=base_url, api_key_env=api_key_env, replay=replay, seed=seed,
                        max_cost=max_cost, price_prompt=price_prompt, price_completion=price_completion,
                        request_timeout=request_timeout, max_tokens=max_tokens, images=send_curve_images,
                        image_tokens=image_tokens)
    if resume:
        if run_dir is None:
            raise click.UsageError("--resume needs --run-dir DIR")
        if task_options:
            raise click.UsageError("a resumed run keeps its task settings; drop --task-option")
        require_run(run_dir)
        hold_run_dir(run_dir)  # before anything is read to continue: a second writer stops here
        try:
            recorded_proposer = _recorded_proposer(run_dir)
        except ArchiveError as exc:
            raise NoArchive(f"cannot resume {run_dir}: {exc}") from None
        changes = {"generations": generations, "workers": workers, "proposer_options":
                   proposer_options(recorded_proposer, **cli_proposer, resuming=True)}
        config, archive = reopen_for_resume(run_dir, changes)
        task = load_task(config.task)
        with failed_if_refused(archive):
            proposer = start(config, task, run_dir)
    else:
        task = load_task(task_spec)
        settings = parse_settings(task, task_options)
        if map_elites and not optional(task, "descriptors"):
            raise BadInput(f"task {task.name} names no behaviour descriptors, so --map-elites has no grid")
        chosen = choose_proposers(proposers, proposer_config, cli_proposer, task.offline_proposer)
        if chosen is None:
            raise click.UsageError(f"task {task.name} has no offline proposer; choose one with --proposer")
        try:
            config = DiscoveryConfig(
                task=task_spec, task_settings=_as_dict(settings), proposer=chosen.first,
                proposer_options=chosen.first_options, more_proposers=chosen.more,
                more_proposer_options=chosen.more_options,
                generations=generations or DEFAULTS.generations, population=population, history=history,
                top_k=top_k, context_tokens=context_tokens, temperature=temperature, seed=seed, seeds=seeds, executor=executor,
                workers=workers, ray_address=ray_address, timeout_s=timeout, prompt_dir=prompt_dir,
                allow_missing=tuple(sorted(allowed)), keep_checkpoints=keep_checkpoints, rungs=rungs,
                race=race, islands=islands, migrate_every=migrate_every,
                advice_every=advice_every, map_elites=map_elites, temperature_schedule=temperature_schedule,
                world_secret=world_secret.fingerprint())
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        run_dir = run_dir or default_run_dir()
        refuse_existing_run(run_dir)  # before the costly checks below
        proposer = start(config, task, run_dir)  # every check before the run directory exists
        archive = start_new_run(config, run_dir, task)
    summary = run(config, task, archive, proposer, run_dir)
    print_summary(summary, run_dir, task, task.settings_from_dict(config.task_settings))
    if summary.status != "finished":
        sys.exit(STOPPED)


def best_sentence(summary, run_dir: Path, task, settings) -> str:
    """The best candidate against the reference: the fitness, the setting, and, in the task's words, whether the
    difference is within its fitness's noise and where the best sits (e.g. against the reference's frontier)."""
    best, reference = summary.best, summary.reference
    if best is None or reference is None or reference.fitness is None:
        return ""
    noise = getattr(task, "fitness_noise", lambda values: 0.0)(best.metrics)  # a task without TaskBase: 0
    difference = best.fitness - reference.fitness
    verdict = ("beats" if difference > noise else "does not beat" if difference < -noise or not noise
               else f"is within the noise (±{noise:.4f}) of")
    details = task.metrics_text(best.metrics)
    return (f"Best: {best.name} {best.fitness:.4f}{f' ({details})' if details else ''} {verdict} "
            f"{reference.name} {reference.fitness:.4f} on this run's fitness, {summary.fitness_name}, at this one "
            f"setting, {task.setting_text(settings)} (check it off this setting with: llm2 heldout {run_dir}).")


def _recorded_proposer(run_dir: Path) -> str:
    from llm2.archive import Archive

    with Archive.open(run_dir, readonly=True) as archive:
        return str(archive.run.proposer)


def _as_dict(settings) -> dict:
    import dataclasses

    return dataclasses.asdict(settings)


def start(config: DiscoveryConfig, task, run_dir: Path):
    """The proposer, once the sandbox, the settings and the proposer's options have been checked and the task's
    world is built (before workers start and would each try to); exit code 2 for a bad choice, 1 otherwise."""
    from llm2.commands.progress_display import progress_on_stderr
    from llm2.proposers import make_proposer
    from llm2.proposers.base import ProposerError

    check_sandbox(config.allow_missing)
    try:
        settings = task.settings_from_dict(config.task_settings)
        proposer = make_proposer(config.proposer, task=task, **config.proposer_options)
        if config.more_proposers:
            proposer = several_proposers(config, proposer, task)
    except (ProposerError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(str(exc).strip("'\"")) from None
    named = (f"proposers {', '.join(config.proposer_labels())}" if config.more_proposers
             else f"proposer {config.proposer}")
    click.echo(f"llm2 discover: task {config.task} ({task.setting_text(settings)}), {named}, run {run_dir}",
               err=True)
    try:
        with progress_on_stderr():
            task.prepare(settings)
    except (ValueError, OSError) as exc:
        raise WorkFailed(f"task {task.name} cannot prepare {task.setting_text(settings)}: {exc}") from None
    return proposer


def run(config: DiscoveryConfig, task, archive, proposer, run_dir: Path):
    from llm2.discovery.loop import Discovery
    from llm2.discovery.run import run_executor

    settings = task.settings_from_dict(config.task_settings)
    with run_executor(config, task, settings, run_dir) as executor:
        try:
            return Discovery(config, task, archive, proposer, executor).run()
        except KeyboardInterrupt:
            archive.set_run_status("stopped")
            raise Interrupted(f"interrupted; continue with: llm2 discover --run-dir {run_dir} --resume") from None
        finally:
            archive.close()


def print_summary(summary, run_dir: Path, task, settings) -> None:
    from llm2.commands.leaderboard import print_leaderboard

    print_leaderboard(run_dir, top=10)
    if summary.message:
        click.echo(summary.message)
    click.echo(f"{summary.candidates} proposals, {summary.evaluated} of them evaluated (the baselines not counted).")
    sentence = best_sentence(summary, run_dir, task, settings)
    if sentence:
        click.echo(sentence)
    click.echo(f"Run stored in {run_dir}/archive.sqlite")
    click.echo(f"Report: llm2 report {run_dir}    Export: llm2 export {run_dir} --top 3 --out best.py")
