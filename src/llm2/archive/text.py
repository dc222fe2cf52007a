"""Untrusted text made storable and showable: every string from a proposer or a candidate passes through here on
its way into the archive (docs/security.md, "Untrusted text").

Stored text is valid UTF-8 (a lone surrogate such as ``\\ud800`` — legal in a Python string, fatal to SQLite's
encoder — becomes U+FFFD) and holds no control characters but newline and tab (no terminal escape sequences, no
carriage returns that overwrite a line, no NUL). Escaping for a particular screen (rich markup, HTML) is the
showing side's job: ``shown`` for the terminal.
"""

from __future__ import annotations

import unicodedata
from typing import Any

_KEPT = frozenset("\n\t")


def clean_text(text: str) -> str:
    """``text`` as valid UTF-8 without control characters other than newline and tab."""
    if not isinstance(text, str):
        text = str(text)
    if text.isprintable() and text.isascii():  # the common case, quickly
        return text
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text
                   if c in _KEPT or unicodedata.category(c) != "Cc")


def clean_optional(text: str | None) -> str | None:
    return None if text is None else clean_text(text)


def clean_value(value: Any) -> Any:
    """Every string in a JSON-able value (dict keys included) cleaned; other values as they are."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: clean_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_value(v) for v in value]
    return value


def shown(text: Any) -> str:
    """Text for a rich terminal (tables, progress lines): cleaned, with rich markup escaped."""
    from rich.markup import escape

    return escape(clean_text("" if text is None else text))
