"""The on-disk cache of built worlds and data, shared by every task.

Files live under ``$LLM2_CACHE_DIR`` (default ``~/.cache/llm2``), are written once under a lock (a second process
waits for the first one's build instead of repeating it) and appear atomically (written under a temporary name,
then renamed), with mode 0600: a candidate's process, which runs as another user and whose reads Landlock limits
anyway, can never read them.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any, Callable

import torch

from llm2.files import write_atomically


def cache_dir() -> Path:
    return Path(os.environ.get("LLM2_CACHE_DIR") or Path.home() / ".cache" / "llm2")


def build_once(path: Path, build: Callable[[], Any]) -> None:
    """Make sure ``path`` exists: call ``build()`` and ``torch.save`` its result there, once, under a lock."""
    build_many_once([path], lambda: [build()])


def build_many_once(paths: list[Path], build: Callable[[], list[Any]]) -> None:
    """Make sure every path exists: one ``build()`` gives their contents (e.g. a world's training and scoring
    halves), saved once, under a lock on the first path (a second process waits instead of building again)."""
    if all(p.exists() for p in paths):
        return
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    with open(paths[0].with_name(paths[0].name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all(p.exists() for p in paths):
            for path, value in zip(paths, build(), strict=True):
                save_atomically(path, value)


def save_atomically(path: Path, value: Any) -> None:
    write_atomically(path, lambda file: torch.save(value, file), private=True)  # 0600: scoring data may be in it


def load(path: Path) -> Any:
    """A cached file, tensors and plain containers only (no pickled code)."""
    return torch.load(path, weights_only=True)
