"""What the proposer is told about each candidate, and how numbers are written for it."""

from __future__ import annotations

from llm2.discovery.prompts import PromptBook
from llm2.numbers import decimal_text as fmt  # noqa: F401 - the name this package's modules use


def details(text: str, lead: str = "", trail: str = "") -> str:
    """A task's metrics text set off for a template: '' when there is none."""
    return f"{lead}{text}{trail}" if text else ""


def feedback_ok(book: PromptBook, *, fitness: float, fitness_std: float | None, metrics_text: str, n_seeds: int,
                reference_name: str, reference_fitness: float | None, best_name: str, best_fitness: float) -> str:
    return book.render("feedback_ok", fitness=fmt(fitness, fitness_std), details=details(metrics_text, trail="; "),
                       n_seeds=n_seeds, reference_name=reference_name, reference_fitness=fmt(reference_fitness),
                       best_name=best_name, best_fitness=fmt(best_fitness))


def feedback_rejected(book: PromptBook, *, status: str, stage: str | None, error: str | None) -> str:
    status_word = {"invalid": "rejected", "failed": "stopped", "timeout": "stopped (time limit)"}.get(status, status)
    return book.render("feedback_rejected", status=status_word, stage=stage or "unknown", error=error or "no reason")


def feedback_duplicate(book: PromptBook, *, original_name: str, original_fitness: float | None) -> str:
    return book.render("feedback_duplicate", original_name=original_name, original_fitness=fmt(original_fitness))


def feedback_rung(book: PromptBook, evidence: dict, metrics_text: str) -> str:
    """A candidate that stopped on a lower rung of the multi-fidelity ladder, with the evidence of that decision."""
    if evidence.get("rule") == "noise":
        return book.render("feedback_race", rung=evidence["rung_text"], fitness=fmt(evidence["fitness"]),
                           details=details(metrics_text, ", "), margin=fmt(evidence["margin"]),
                           best=fmt(evidence["best_full"]))
    return book.render("feedback_rung", rung=evidence["rung_text"], fitness=fmt(evidence["fitness"]),
                       details=details(metrics_text, ", "), rank=evidence["rank"], of=evidence["of"],
                       quota=evidence["quota"])


def with_curves(book: PromptBook, text: str, description: str) -> str:
    """The feedback, followed by what the training curves showed when the task described them."""
    return f"{text}\n{book.render('curves', description=description)}" if description else text


def feedback_behaviour(book: PromptBook, *, original_name: str, original_fitness: float | None, why: str) -> str:
    """A behavioural duplicate: ``why`` is the task's own words for what makes two candidates the same."""
    return book.render("feedback_behaviour", original_name=original_name, original_fitness=fmt(original_fitness),
                       why=why)
