"""Prompt templates: editable text files in ``llm2/discovery/prompts``. A task may ship its own versions of any of
them (``Task.prompt_dir``), and a ``--prompt-dir`` overrides both."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

TEMPLATE_NAMES = ("system", "intro", "baseline", "feedback_ok", "feedback_rejected", "feedback_duplicate",
                  "feedback_behaviour", "topk_summary", "older_summary", "reask", "curves", "feedback_rung",
                  "feedback_race", "parents", "advice", "advice_note", "advice_rewrite")


class PromptBook:
    def __init__(self, override_dir: str | Path | None = None, task_dir: str | Path | None = None):
        self._templates: dict[str, str] = {}
        for name in TEMPLATE_NAMES:
            for directory in (override_dir, task_dir):
                candidate = Path(directory) / f"{name}.txt" if directory else None
                if candidate is not None and candidate.is_file():
                    text = candidate.read_text(encoding="utf-8")
                    break
            else:
                text = resources.files("llm2.discovery").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")
            self._templates[name] = text.strip("\n")

    def render(self, template: str, **values: Any) -> str:
        try:
            return self._templates[template].format(**values)
        except KeyError as exc:
            raise ValueError(f"prompt template {template!r} uses the unknown field {exc}; "
                             f"available: {', '.join(sorted(values))}") from None
