"""``llm2 discover``: run (or resume) a discovery and print its leaderboard."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from llm2.discovery.config import DiscoveryConfig

DEFAULTS = DiscoveryConfig()


def proposer_options(proposer: str, *, model: str | None, base_url: str | None, api_key_env: str,
                     replay: str | None, seed: int, max_cost: float | None, price_prompt: float | None,
                     price_completion: float | None, timeout: float) -> dict:
    if proposer == "symbolic":
        return {"seed": seed}
    if proposer == "replay":
        if not replay:
            raise click.UsageError("--proposer replay needs --replay FILE.jsonl")
        return {"path": replay}
    if not model:
        raise click.UsageError(f"--proposer {proposer} needs --model")
    if proposer == "hf":
        return {"model": model}
    options = {"model": model, "api_key_env": api_key_env, "max_cost_usd": max_cost,
               "price_prompt_per_1k": price_prompt, "price_completion_per_1k": price_completion,
               "timeout_s": timeout}
    if base_url:
        options["base_url"] = base_url
    return options


@click.command()
@click.option("--task", default=DEFAULTS.task, show_default=True)
@click.option("--proposer", type=click.Choice(["symbolic", "openai", "hf", "replay"]), default=DEFAULTS.proposer,
              show_default=True)
@click.option("--model", help="Model name (openai) or local path / hub id (hf).")
@click.option("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 for vLLM.")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="Environment variable holding the API key (the key itself is never recorded).")
@click.option("--replay", "replay", type=click.Path(dir_okay=False), help="JSONL of replies for --proposer replay.")
@click.option("--generations", type=int, default=None, help=f"Generations to run [default: {DEFAULTS.generations}].")
@click.option("--population", type=int, default=DEFAULTS.population, show_default=True,
              help="Proposals per generation, evaluated side by side.")
@click.option("--history", type=click.Choice(["full", "topk"]), default=DEFAULTS.history, show_default=True)
@click.option("--top-k", type=int, default=DEFAULTS.top_k, show_default=True)
@click.option("--temperature", type=float, default=DEFAULTS.temperature, show_default=True)
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True, help="Seed of the proposer's requests.")
@click.option("--seeds", type=int, default=DEFAULTS.seeds, show_default=True, help="Training seeds per candidate.")
@click.option("--beta", type=float, default=DEFAULTS.beta, show_default=True)
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--resume", is_flag=True, help="Continue the run stored in --run-dir.")
@click.option("--prompt-dir", type=click.Path(file_okay=False, exists=True), help="Directory overriding prompt files.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=DEFAULTS.executor, show_default=True)
@click.option("--workers", type=int, default=None, help="Local workers [default: number of cores].")
@click.option("--ray-address", default=None, help="Ray cluster address (default: start a local instance).")
@click.option("--timeout", type=float, default=DEFAULTS.timeout_s, show_default=True,
              help="Seconds one evaluation may take before it is killed.")
@click.option("--max-cost", type=float, default=None, help="Stop cleanly once the proposer has cost this many USD.")
@click.option("--price-prompt", type=float, default=None, help="USD per 1k prompt tokens (for cost accounting).")
@click.option("--price-completion", type=float, default=None, help="USD per 1k completion tokens.")
def discover(task, proposer, model, base_url, api_key_env, replay, generations, population, history, top_k,
             temperature, seed, seeds, beta, run_dir, resume, prompt_dir, executor, workers, ray_address, timeout,
             max_cost, price_prompt, price_completion) -> None:
    """Let a proposer invent losses for TASK; with no options, a short offline run on the built-in proposer."""
    from llm2.discovery.run import create_run, default_run_dir, reopen_run

    try:
        if resume:
            if run_dir is None:
                raise click.UsageError("--resume needs --run-dir DIR")
            config, archive = reopen_run(run_dir, generations)
        else:
            config = DiscoveryConfig(
                task=task, proposer=proposer,
                proposer_options=proposer_options(proposer, model=model, base_url=base_url, api_key_env=api_key_env,
                                                  replay=replay, seed=seed, max_cost=max_cost,
                                                  price_prompt=price_prompt, price_completion=price_completion,
                                                  timeout=timeout),
                generations=generations or DEFAULTS.generations, population=population, history=history,
                top_k=top_k, temperature=temperature, seed=seed, seeds=seeds, beta=beta, executor=executor,
                workers=workers, ray_address=ray_address, timeout_s=timeout, prompt_dir=prompt_dir)
            run_dir = run_dir or default_run_dir()
            archive = create_run(config, run_dir)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    summary = run(config, archive, run_dir)
    print_summary(summary, run_dir)
    if summary.status != "finished":
        sys.exit(3)


def run(config: DiscoveryConfig, archive, run_dir: Path):
    from llm2.discovery.loop import Discovery
    from llm2.execution import make_executor
    from llm2.proposers import make_proposer
    from llm2.tasks import get_task
    from llm2.tasks.base import EvalSetting

    task = get_task(config.task, **config.task_options)
    click.echo(f"llm2 discover: task {config.task}, proposer {config.proposer}, run {run_dir}", err=True)
    # Build the world here, once, before workers start and would each try to.
    task.prepare(EvalSetting(beta=config.beta, world_seed=config.world_seed))
    proposer = make_proposer(config.proposer, **config.proposer_options)
    with make_executor(config.executor, task_name=config.task, task_options=config.task_options,
                       workers=config.resolved_workers(), timeout_s=config.timeout_s,
                       ray_address=config.ray_address) as executor:
        try:
            return Discovery(config, task, archive, proposer, executor).run()
        except KeyboardInterrupt:
            archive.set_run_status("stopped")
            raise click.ClickException(f"interrupted; continue with: llm2 discover --run-dir {run_dir} --resume")
        finally:
            archive.close()


def print_summary(summary, run_dir: Path) -> None:
    from llm2.commands.leaderboard import print_leaderboard

    print_leaderboard(run_dir, top=10)
    best, dpo = summary.best, summary.dpo
    if summary.message:
        click.echo(summary.message)
    click.echo(f"{summary.candidates} candidates proposed, {summary.evaluated} evaluated.")
    if best is not None and dpo is not None and dpo.fitness is not None:
        verdict = "beats" if best.fitness > dpo.fitness else "does not beat"
        click.echo(f"Best: {best.name} {best.fitness:.4f} {verdict} dpo {dpo.fitness:.4f} on this run's fitness "
                   f"(check it off this setting with: llm2 heldout {run_dir}).")
    click.echo(f"Run stored in {run_dir}/archive.sqlite")
    click.echo(f"Report: llm2 report {run_dir}    Export: llm2 export {run_dir} --top 3 --out best.py")
