"""The environment handed to any process that may run candidate code: this one's, minus anything secret."""

from __future__ import annotations

import os

_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE", "SESSION")


def stripped_environment() -> dict[str, str]:
    """os.environ without anything that looks like a secret (the proposer's API key, above all): a candidate that
    read its environment could otherwise put it into an error message that reaches a report or the proposer.
    One torch thread: several workers share the machine's cores."""
    kept = {name: value for name, value in os.environ.items()
            if not any(marker in name.upper() for marker in _SECRET_MARKERS)}
    return {**kept, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
