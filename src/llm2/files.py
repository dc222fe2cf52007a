"""Files written whole or not at all, and JSON / JSON-lines read and written one way everywhere.

A file appears atomically: written beside its final name, then renamed (``os.replace``), so a process killed at any
moment leaves either the old file, the new one, or none; never half of one. Imports nothing of llm2.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def partial_dir(path: Path) -> Path:
    """Where a directory is built before it is renamed into place."""
    return path.with_name(f".{path.name}.partial")


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False))


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def replace_dir(built: Path, final: Path) -> None:
    """Move a completed directory into place (a leftover from a killed attempt is removed first)."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(built, final)


def fresh_dir(path: Path) -> Path:
    """An empty directory at ``path`` (what a killed attempt left there is removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def write_text(path: Path, text: str) -> None:
    """``text`` in ``path``, atomically (written beside, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
