"""The ``llm2`` command. Each subcommand lives in ``llm2.commands.<name>``; adding one is one line in COMMANDS.

Subcommands are imported only when called, so ``llm2 --help`` does not pay for torch.
"""

from __future__ import annotations

import importlib

import click

COMMANDS: dict[str, str] = {
    "objectives": "llm2.commands.objectives:objectives",
    "evaluate": "llm2.commands.evaluate:evaluate",
    "discover": "llm2.commands.discover:discover",
    "leaderboard": "llm2.commands.leaderboard:leaderboard",
    "export": "llm2.commands.export:export",
    "heldout": "llm2.commands.heldout:heldout",
    "report": "llm2.commands.report:report",
    "plot": "llm2.commands.plot:plot",
    "tasks": "llm2.commands.tasks:tasks",
    "self-develop": "llm2.commands.self_develop:self_develop",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def invoke(self, ctx: click.Context):
        # Ctrl-C anywhere ends with 130, as docs/cli.md's table says (click alone would print "Aborted!", code 1).
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(130) from None


@click.group(cls=LazyGroup)
@click.version_option(package_name="llm2")
def main() -> None:
    """llm2: a language model invents better ways to train language models."""


if __name__ == "__main__":
    main()
