"""Kept checkpoints of a run (``llm2 discover --keep-checkpoints N``): where they are, pruning to the N best, and
reading one back for ``llm2 export --checkpoints``.

The executor keeps what a scored job's child handed back under the job's key ("12:0": candidate 12 at seed 0) in
``RUN_DIR/checkpoints``: a ``.safetensors`` file of tensors, or the directory a task's ``output="directory"``
runtime writes (a merged model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from llm2.execution.handle import checkpoint_file_name, remove_path
from llm2.task_api.base import TrainOutput

CHECKPOINTS = "checkpoints"  # the folder of a run directory that holds kept weights
SUFFIX = ".safetensors"


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def _stem(candidate_id: int, seed: int) -> str:
    return checkpoint_file_name(f"{candidate_id}:{seed}").removesuffix(SUFFIX)


def kept(run_dir: Path, candidate_id: int, seed: int) -> Path | None:
    """The kept file or directory of a candidate at a seed, or None."""
    base = checkpoint_dir(run_dir) / _stem(candidate_id, seed)
    for path in (base.with_name(base.name + SUFFIX), base):
        if path.exists():
            return path
    return None


def load(path: Path) -> TrainOutput:
    """A kept checkpoint as the scorer saw it: tensors from a file, or a directory's path."""
    if path.is_dir():
        return TrainOutput({}, [], 0, output_dir=str(path))
    from safetensors.torch import load_file

    return TrainOutput(load_file(str(path)), [], 0)


def prune(run_dir: Path, wanted: Iterable[tuple[int, int]]) -> None:
    """Remove every kept checkpoint but those of the wanted (candidate id, seed) pairs."""
    directory = checkpoint_dir(run_dir)
    if not directory.is_dir():
        return
    keep = {_stem(candidate_id, seed) for candidate_id, seed in wanted}
    for path in directory.iterdir():
        if path.name.removesuffix(SUFFIX) in keep or path.name.endswith(".tmp"):
            continue
        remove_path(path)
