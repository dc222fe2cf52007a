"""Task registry: a new task is one module plus one line here."""

from __future__ import annotations

import importlib
from typing import Any

from llm2.tasks.base import Task

# name -> "module:factory"; imported lazily so listing tasks stays cheap.
TASKS: dict[str, str] = {
    "preference-synthetic": "llm2.tasks.preference_synthetic.task:PreferenceSyntheticTask",
}


def get_task(name: str, **options: Any) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    module_name, factory = TASKS[name].split(":")
    return getattr(importlib.import_module(module_name), factory)(**options)
