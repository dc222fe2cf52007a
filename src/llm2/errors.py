"""How an exception is shown to a user: one line, never a traceback."""

from __future__ import annotations


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of the exception's message (at most ``limit`` characters), or its type's name when empty."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
