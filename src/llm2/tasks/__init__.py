"""The tasks built into llm2, one folder each. Their registry (``TASKS``, ``load_task``) is on the ground floor,
``llm2.task_api.registry``, so that the sandbox and the commands can load a task without importing this package's
plug-ins; the names stay importable from here."""

from llm2.task_api.registry import (ENTRY_POINT_GROUP, TASKS, TaskNotFound, import_user_file, known_tasks,
                                    load_task)

__all__ = ["ENTRY_POINT_GROUP", "TASKS", "TaskNotFound", "import_user_file", "known_tasks", "load_task"]
