"""What the factory is asked: one fixed prompt per run, recorded with every sample.

A real model gets the discovery's own opening (the system prompt and the intro with the baselines measured in this
run), from the same prompt files as ``llm2 discover``. The offline default factory is a tiny model that never saw
such text: it gets a short prompt derived from the task, the one it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llm2.archive import CandidateRecord
from llm2.discovery import opening
from llm2.discovery.prompts import PromptBook
from llm2.proposers.base import Message
from llm2.task_api.optional import optional


@dataclass(frozen=True)
class FactoryPrompt:
    """The prompt as messages (what the archive records) and, for a model without a chat template, as the one
    text it continues."""

    messages: tuple[Message, ...]
    text: str | None = None  # None: the model's chat template renders the messages

    def as_dict(self) -> dict:
        return {"messages": [{"role": m.role, "content": m.content} for m in self.messages], "text": self.text}

    @classmethod
    def from_dict(cls, data: dict) -> FactoryPrompt:
        return cls(tuple(Message(m["role"], m["content"]) for m in data["messages"]), data.get("text"))


def short_prompt(task) -> str:
    """The offline factory's prompt: the task, the kind of algorithm and the contract's signature, as comments."""
    return (f"# llm2 task: {task.name}\n# Write one new {task.texts.kind}, as one Python function:\n"
            f"# {task.contract.signature}\n")


def plain_prompt(text: str) -> FactoryPrompt:
    return FactoryPrompt((Message("user", text),), text)


def transcript(messages: Sequence[Message]) -> str:
    """Messages as one text ending where the assistant speaks, for a base model without a chat template (the same
    form ``llm2.proposers.hf`` uses)."""
    return "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant: "


def discovery_messages(task, settings, baselines: Sequence[CandidateRecord], seeds: int,
                       book: PromptBook | None = None) -> tuple[Message, Message]:
    """The system prompt and the intro ``llm2 discover`` opens its conversation with, for this run's baselines."""
    book = book or PromptBook(None, optional(task, "prompt_dir"))
    return (Message("system", opening.system_prompt(book, task, settings)),
            Message("user", opening.intro(book, task, settings, baselines, seeds)))
