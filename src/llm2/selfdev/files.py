"""Where a self-develop run keeps its own state, beside the archive: ``DIR/selfdev/``.

    plan.json                     the plan (written once)
    prompt.json                   the prompt every sample was asked with (written once, after the baselines)
    iteration-K/factory/          the factory that wrote iteration K's samples (K > 0: trained on K-1's pairs),
                                  with factory.json and, when trained here, training.json (TRL's log)
    iteration-K/adapter/          the LoRA adapter trained on K-1's pairs (LoRA factories only)
    iteration-K/samples.jsonl     each sample: slot, candidate, raw completion, status, fitness
    iteration-K/pairs.jsonl       (prompt, chosen, rejected) built from iteration K's own results
    iteration-K/stats.json        the iteration's statistics; written last: its presence means iteration K is done

Every file appears atomically (written beside, then renamed), so a run killed at any moment leaves each one either
whole or absent; a factory directory is built under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SELFDEV_DIRNAME = "selfdev"


@dataclass(frozen=True)
class RunFiles:
    run_dir: Path

    @property
    def root(self) -> Path:
        return self.run_dir / SELFDEV_DIRNAME

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def prompt(self) -> Path:
        return self.root / "prompt.json"

    def iteration(self, k: int) -> Path:
        return self.root / f"iteration-{k}"

    def factory(self, k: int) -> Path:
        return self.iteration(k) / "factory"

    def adapter(self, k: int) -> Path:
        return self.iteration(k) / "adapter"

    def samples(self, k: int) -> Path:
        return self.iteration(k) / "samples.jsonl"

    def pairs(self, k: int) -> Path:
        return self.iteration(k) / "pairs.jsonl"

    def stats(self, k: int) -> Path:
        return self.iteration(k) / "stats.json"

    def iterations_done(self) -> list[int]:
        done, k = [], 0
        while self.stats(k).is_file():
            done.append(k)
            k += 1
        return done


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
