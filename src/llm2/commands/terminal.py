"""How commands print tables: as wide as the terminal, names wrapped rather than cut, no spread from one seed."""

from __future__ import annotations

import sys

from llm2.numbers import fitness_header, spread_text  # noqa: F401 - the commands' tables use them

PIPED_WIDTH = 200  # output to a file or a pipe, where there is no terminal to ask


def console():
    """A rich console as wide as the terminal; piped output gets PIPED_WIDTH columns (a COLUMNS inherited by a
    pipe says nothing about where the text goes)."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=PIPED_WIDTH)


def add_name_column(table, header: str, **options) -> None:
    """A column of names (candidates, objectives, tasks, options) that wraps a long name over lines, never cuts it."""
    table.add_column(header, overflow="fold", **options)


