"""Task registry: a task built into llm2 is one folder under llm2/tasks/ plus one line in TASKS.

Other tasks come from outside the package, either from an installed distribution that declares an entry point in
the ``llm2.tasks`` group (``name = "package.module:ClassName"``), or from a file given as ``path/to/file.py:ClassName``.
A task class is instantiated without arguments; its settings come from ``--task-option key=value``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib import metadata
from pathlib import Path

from llm2.task_api.base import Task

# name -> "module:Class"; imported lazily so listing tasks stays cheap.
TASKS: dict[str, str] = {
    "preference-synthetic": "llm2.tasks.preference_synthetic.task:PreferenceSyntheticTask",
    "classification": "llm2.tasks.classification.task:ClassificationTask",
    "merging-synthetic": "llm2.tasks.merging_synthetic.task:MergingSyntheticTask",
    "merging-hf": "llm2.tasks.merging_hf.task:MergingHFTask",
    "preference-hf": "llm2.tasks.preference_hf.task:PreferenceHFTask",
    "reward-design": "llm2.tasks.reward_design.task:RewardDesignTask",
}
ENTRY_POINT_GROUP = "llm2.tasks"


class TaskNotFound(LookupError):
    """The task spec names no known task, or its file or class cannot be loaded; the message says why."""


def known_tasks() -> dict[str, str]:
    """Built-in tasks and those installed packages register (name -> "module:Class")."""
    found = dict(TASKS)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


def load_task(spec: str) -> Task:
    """A task by registered name, or from ``FILE.py:ClassName``."""
    registered = known_tasks()
    if spec in registered:
        module_name, _, class_name = registered[spec].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise TaskNotFound(f"task {spec!r} cannot be imported: {exc}") from None
        return _instantiate(spec, module, class_name)
    path, sep, class_name = spec.rpartition(":")
    if sep and path.endswith(".py"):
        return _instantiate(spec, _module_from_file(Path(path)), class_name)
    raise TaskNotFound(f"unknown task {spec!r}; known tasks: {', '.join(sorted(registered))}; "
                       "or give a file as path/to/task.py:ClassName")


def _module_from_file(path: Path):
    if not path.is_file():
        raise TaskNotFound(f"task file not found: {path}")
    try:
        return import_user_file(path, "llm2_user_task")
    except Exception as exc:  # noqa: BLE001 - report, do not crash the command
        raise TaskNotFound(f"task file {path} failed to load: {type(exc).__name__}: {exc}") from None


def import_user_file(path: Path, prefix: str):
    """Run the user's own .py file as a module, once per process (it is trusted, like any code they install;
    candidates never come through here). Raises whatever the file raises."""
    name = f"{prefix}_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _instantiate(spec: str, module, class_name: str) -> Task:
    factory = getattr(module, class_name, None)
    if factory is None:
        raise TaskNotFound(f"task {spec!r}: {module.__name__} has no {class_name!r}")
    try:
        return factory()
    except Exception as exc:  # noqa: BLE001
        raise TaskNotFound(f"task {spec!r} could not be created: {type(exc).__name__}: {exc}") from None
