"""How a conversation with a proposer opens: the system prompt (the contract and the rules) and the intro (the
task, what the fitness measures, the baselines measured in the run). ``llm2 discover`` and ``llm2 self-develop``
open with the same text, from the same prompt files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llm2.archive import CandidateRecord
from llm2.archive.ranking import baseline
from llm2.discovery.feedback import details, fmt
from llm2.discovery.prompts import PromptBook


def system_prompt(book: PromptBook, task: Any, settings: Any) -> str:
    contract, texts = task.contract, task.texts_for(settings)
    return book.render(
        "system", task_kind=texts.kind, contract=contract.description,
        allowed_imports=", ".join(f"`{m}`" for m in sorted(contract.allowed_imports)),
        preloaded=", ".join(f"`{m}`" for m in contract.preloaded) or "none",
        rules=texts.rules.strip() + "\n" if texts.rules.strip() else "", expertise=texts.expertise)


def intro(book: PromptBook, task: Any, settings: Any, baselines: Sequence[CandidateRecord], seeds: int) -> str:
    texts = task.texts_for(settings)
    shown = "\n\n".join(
        book.render("baseline", name=c.name, fitness=fmt(c.fitness, c.fitness_std),
                    details=details(task.metrics_text(c.metrics), ", "), code=c.code.strip())
        for c in baselines)
    return book.render("intro", task_description=texts.description, fitness_description=texts.fitness,
                       setting=task.setting_text(settings), n_seeds=seeds,
                       reference_fitness=fmt(start_fitness(task, settings)), baselines=shown)


def start_fitness(task: Any, settings: Any) -> float | None:
    """The untrained starting point's fitness, scored by the trusted scorer of this process."""
    try:
        return task.scorer(settings).reference_metrics().fitness
    except Exception:  # noqa: BLE001 - a task that cannot score its start still gets a prompt; the text says n/a
        return None


def add_missing_baselines(archive: Any, task: Any, names: Sequence[str]) -> None:
    """Generation 0: the named catalog baselines (the task's own by default), each recorded once, even on resume."""
    measured = {c.name for c in archive.candidates() if c.generation == 0}
    for name in names or task.discovery_baselines:
        if name not in measured:
            known = task.baselines[name]
            archive.add_candidate(generation=0, proposer="catalog", thought=known.formula, name=name, code=known.code)


def reference_probes(archive: Any, task: Any, seeds: Sequence[int]) -> dict[int, float]:
    """The reference baseline's probe fitness per seed: the cascade judges every later probe against it."""
    reference = baseline(archive.candidates(), task.reference_baseline)
    probes = (reference.metrics.get("probe_fitness_per_seed") or []) if reference is not None else []
    return {seed: value for seed, value in zip(seeds, probes) if value is not None}
