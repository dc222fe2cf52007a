"""Prompt templates: editable text files in ``llm2/discovery/prompts``; a ``--prompt-dir`` overrides any of them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

TEMPLATE_NAMES = ("system", "intro", "baseline", "feedback_ok", "feedback_rejected", "feedback_duplicate",
                  "topk_summary", "reask")


class PromptBook:
    def __init__(self, override_dir: str | Path | None = None):
        self._templates: dict[str, str] = {}
        for name in TEMPLATE_NAMES:
            override = Path(override_dir) / f"{name}.txt" if override_dir else None
            if override is not None and override.is_file():
                text = override.read_text(encoding="utf-8")
            else:
                text = resources.files("llm2.discovery").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")
            self._templates[name] = text.strip("\n")

    def render(self, template: str, **values: Any) -> str:
        try:
            return self._templates[template].format(**values)
        except KeyError as exc:
            raise ValueError(f"prompt template {template!r} uses the unknown field {exc}; "
                             f"available: {', '.join(sorted(values))}") from None
