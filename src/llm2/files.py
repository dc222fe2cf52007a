"""Files written whole or not at all, and JSON / JSON-lines read and written one way everywhere.

A file appears atomically: written beside its final name, then renamed (``os.replace``), so a process killed at any
moment leaves either the old file, the new one, or none; never half of one. Imports nothing of llm2.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO


def partial_dir(path: Path) -> Path:
    """Where a directory is built before it is renamed into place."""
    return path.with_name(f".{path.name}.partial")


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False))


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list:
    """Every value of a JSON-lines file (blank lines skipped); a bad line raises ``JsonLineError``."""
    return [value for _, value in json_lines(path)]


class JsonLineError(ValueError):
    """A line of a JSON-lines file that is not JSON: ``number`` (from 1) and the decoder's ``error``."""

    def __init__(self, path: Path, number: int, error: json.JSONDecodeError):
        super().__init__(f"{path}:{number}: not a JSON line ({error.msg})")
        self.number = number
        self.error = error


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSON-lines file, read as it goes (a caller may stop early);
    opening it raises ``OSError``, a bad line ``JsonLineError``."""
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise JsonLineError(path, number, exc) from None


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
    """``text`` in ``path`` (UTF-8), atomically."""
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))


def write_atomically(path: Path, write: Callable[[BinaryIO], Any], *, private: bool = False) -> None:
    """``write(file)`` fills a new file beside ``path`` that is then renamed to it, so ``path`` is either as before
    or complete; on any error the partial file goes. ``private``: mode 0600 (else as the umask allows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
