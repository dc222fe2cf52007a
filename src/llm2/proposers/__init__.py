"""Proposer registry: a new proposer is one module plus one line here.

Modules are imported lazily so that, e.g., the symbolic proposer never pays for transformers.
"""

from __future__ import annotations

import importlib
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
    "reward-design-offline": "llm2.tasks.reward_design.proposer:RewardDesignOfflineProposer",
    "openai": "llm2.proposers.openai:OpenAIProposer",
    "hf": "llm2.proposers.hf:HFProposer",
    "replay": "llm2.proposers.replay:ReplayProposer",
    "factory": "llm2.selfdev.proposer:FactoryProposer",
}


def make_proposer(name: str, **options: Any) -> Proposer:
    """Build the proposer registered under ``name`` with ``options`` as keyword arguments."""
    if name not in PROPOSERS:
        raise KeyError(f"unknown proposer {name!r}; known proposers: {', '.join(sorted(PROPOSERS))}")
    module_name, class_name = PROPOSERS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)(**options)


__all__ = [
    "PROPOSERS", "make_proposer", "BudgetExceeded", "Message", "ProposalRequest", "Proposer", "ProposerError",
    "Reply", "ScoredCandidate",
]
