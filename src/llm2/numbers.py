"""How llm2 writes a measured number for people and for the proposer: fixed decimals, one way everywhere.

(A constant inside generated code is another thing: ``tasks/preference/symbolic_grammar.fmt`` writes a literal.)
"""

from __future__ import annotations


def decimal_text(value: float | None, std: float | None = None, *, digits: int = 4, missing: str = "n/a") -> str:
    """``0.7312``, ``0.7312 ± 0.0040`` with a spread, ``missing`` for no value."""
    if value is None:
        return missing
    return f"{value:.{digits}f}" if std is None else f"{value:.{digits}f} ± {std:.{digits}f}"


def spread_text(mean: float | None, std: float | None, seeds: int | None, digits: int = 4) -> str:
    """'mean ± std'; the mean alone when there is no spread to show (one seed, or none measured)."""
    if mean is None:
        return "-"
    return decimal_text(mean, None if seeds == 1 else std, digits=digits)


def fitness_header(seeds: int | None) -> str:
    return "fitness (1 seed)" if seeds == 1 else "fitness (mean ± std)"
