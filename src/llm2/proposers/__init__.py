"""Proposer registry: a new proposer is one module plus one line here.

Modules are imported lazily so that, e.g., the symbolic proposer never pays for transformers. A proposer from
outside the package (a task's own offline proposer, shipped with the task) registers through an entry point in the
``llm2.proposers`` group (``name = "package.module:ClassName"``), as tasks do in ``llm2.tasks``.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

from llm2.proposers.base import (
    BudgetExceeded,
    Message,
    ProposalRequest,
    Proposer,
    ProposerError,
    Reply,
    ScoredCandidate,
)

# name -> "module:Class"
PROPOSERS: dict[str, str] = {
    "symbolic": "llm2.tasks.preference.symbolic:SymbolicProposer",
    "classification-offline": "llm2.tasks.classification.proposer:ClassificationOfflineProposer",
    "merging-offline": "llm2.tasks.merging.proposer:MergingOfflineProposer",
    "openai": "llm2.proposers.openai:OpenAIProposer",
    "hf": "llm2.proposers.hf:HFProposer",
    "replay": "llm2.proposers.replay:ReplayProposer",
    "factory": "llm2.selfdev.proposer:FactoryProposer",
}


ENTRY_POINT_GROUP = "llm2.proposers"


def known_proposers() -> dict[str, str]:
    """Built-in proposers and those installed packages register (name -> "module:Class")."""
    found = dict(PROPOSERS)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


def make_proposer(name: str, **options: Any) -> Proposer:
    """Build the proposer registered under ``name`` with ``options`` as keyword arguments."""
    registered = PROPOSERS if name in PROPOSERS else known_proposers()
    if name not in registered:
        raise KeyError(f"unknown proposer {name!r}; known proposers: {', '.join(sorted(registered))}")
    module_name, _, class_name = registered[name].partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise KeyError(f"proposer {name!r} ({registered[name]}) cannot be loaded: {exc}") from None
    return factory(**options)


__all__ = [
    "PROPOSERS", "known_proposers", "make_proposer", "BudgetExceeded", "Message", "ProposalRequest", "Proposer", "ProposerError",
    "Reply", "ScoredCandidate",
]
