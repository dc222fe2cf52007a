"""Proposer registry: the proposers that serve every task are one module each plus one line here; a task's own
offline proposers are declared by the task (its ``offline_proposers``, name -> "module:Class") and found through the
task registry, built-in and outside tasks alike, so this layer names no task.

Modules are imported lazily so that, e.g., the symbolic proposer never pays for transformers. A proposer from
outside the package may also register through an entry point in the ``llm2.proposers`` group
(``name = "package.module:ClassName"``), as tasks do in ``llm2.tasks``.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any, Iterator

from llm2.proposers.base import (
    BudgetExceeded,
    Message,
    ProposalRequest,
    Proposer,
    ProposerError,
    Reply,
    ScoredCandidate,
)

# name -> "module:Class": the proposers for any task
PROPOSERS: dict[str, str] = {
    "openai": "llm2.proposers.openai:OpenAIProposer",
    "hf": "llm2.proposers.hf:HFProposer",
    "replay": "llm2.proposers.replay:ReplayProposer",
    "factory": "llm2.selfdev.proposer:FactoryProposer",
}


ENTRY_POINT_GROUP = "llm2.proposers"


def known_proposers() -> dict[str, str]:
    """Built-in proposers, those installed packages register and those every known task declares
    (name -> "module:Class"). Loads every task's module: for listings and errors, not for the common path."""
    found = _registered()
    for name, target in _task_proposers():
        found.setdefault(name, target)
    return found


def _registered() -> dict[str, str]:
    found = dict(PROPOSERS)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


def _task_proposers(task: Any = None) -> Iterator[tuple[str, str]]:
    """(name, "module:Class") of the offline proposers tasks declare: ``task``'s first, then every known task's in
    the registry's order (a task whose module cannot be imported declares none)."""
    from llm2.task_api.optional import optional
    from llm2.task_api.registry import known_tasks

    if task is not None:
        yield from optional(task, "offline_proposers").items()
    for target in known_tasks().values():
        module_name, _, class_name = target.partition(":")
        try:
            task_class = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            continue
        yield from optional(task_class, "offline_proposers").items()


def make_proposer(name: str, task: Any = None, **options: Any) -> Proposer:
    """Build the proposer registered under ``name`` with ``options`` as keyword arguments; ``task`` (the run's,
    when known) is asked first for the offline proposers it declares, before the other tasks are loaded."""
    registered = _registered()
    if name not in registered:
        target = next((target for declared, target in _task_proposers(task) if declared == name), None)
        if target is None:
            raise KeyError(f"unknown proposer {name!r}; known proposers: {', '.join(sorted(known_proposers()))}")
        registered = {name: target}
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
