"""How llm2 writes a measured number for people and for the proposer: fixed decimals, one way everywhere.

(A constant inside generated code is another thing: ``tasks/preference/symbolic_grammar.fmt`` writes a literal.)
"""

from __future__ import annotations


def decimal_text(value: float | None, std: float | None = None, *, digits: int = 4, missing: str = "n/a") -> str:
    """``0.7312``, ``0.7312 ± 0.0040`` with a spread, ``missing`` for no value."""
    if value is None:
        return missing
    return f"{value:.{digits}f}" if std is None else f"{value:.{digits}f} ± {std:.{digits}f}"
