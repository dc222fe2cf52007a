"""Merging Hugging Face models one tensor at a time: read each parameter from the models' safetensors files, merge
it, and write it straight into the merged model's shard on disk.

Memory holds a few tensors, never a model. A model is opened once (``OpenModel``): each safetensors file is mapped
into memory read-only (paged in on demand, no file descriptor kept), and its small files (config, tokenizer) are
read. ``OpenModel.read`` copies one tensor out of the map and hands its pages back at once, and the output shards
are written incrementally. That works because a safetensors file's header, which lists every tensor's offset, can be
written first: the merged model has the base model's names, shapes and dtypes, all known before any tensor is
merged. Only safetensors files are read, never pickles. The merged directory is a Hugging Face model: the base's
config, tokenizer and other small files (``SMALL_FILE_NAMES``), and the weights in ``model.safetensors`` or shards
with ``model.safetensors.index.json``.

Opened models can be handed to another process: one forked after they were opened inherits the maps and the small
files' bytes, and reads the models without any access to their directories (a sandboxed merge runs so: the warm
worker opens the models, the confined child it forks merges them).
"""

from __future__ import annotations

import ctypes
import fnmatch
import json
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llm2.tasks.merging.contract import checked_merge

INDEX_FILE = "model.safetensors.index.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".onnx")
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
DEFAULT_SHARD_BYTES = 2 * 1024**3
# A model's small files copied into the merged directory: configs, tokenizers, chat templates (never code, never
# pickles); with the weights, the names a merged directory holds (``MODEL_FILE_NAMES``)
SMALL_FILE_NAMES = ("*.json", "tokenizer.model", "*.txt", "*.jinja")
MODEL_FILE_NAMES = ("*.safetensors", *SMALL_FILE_NAMES)
MAX_HEADER_BYTES = 100 * 1024**2  # safetensors' own limit on a header
_MADV_DONTNEED = 4
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _libc_function(name: str) -> Callable[..., int] | None:
    try:
        return getattr(ctypes.CDLL("libc.so.6", use_errno=True), name)
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_MALLOC_TRIM = _libc_function("malloc_trim")
_MADVISE = _libc_function("madvise")
if _MADVISE is not None:
    _MADVISE.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def release_freed_memory() -> None:
    """Hand memory freed by the last tensor back to the system. glibc keeps large freed blocks for reuse (its mmap
    threshold grows after each large free), so without this the process's footprint creeps up by dozens of
    tensors over a merge instead of following the few tensors in use."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class MergeInputError(ValueError):
    """The models cannot be merged as given (missing weights, different shapes, unreadable files); one line."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    file: Path
    shape: tuple[int, ...]
    dtype: str  # safetensors' dtype name ("BF16")
    offset: int = 0  # where its bytes start in the file

    @property
    def nbytes(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count * DTYPES[self.dtype].itemsize


@dataclass(frozen=True)
class MergeReport:
    files: tuple[str, ...]  # the weight files written, in order
    tensors: int
    merged: int  # tensors the function merged (the others, integer buffers, are copied from the base)
    bytes: int


def weight_files(model_dir: Path) -> list[Path]:
    """A model directory's safetensors files (through its index when it has one)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise MergeInputError(f"{model_dir}: not a directory")
    index = model_dir / INDEX_FILE
    if index.exists():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError) as exc:
            raise MergeInputError(f"{index}: not a valid safetensors index ({exc})") from None
        files = [model_dir / name for name in names]
        missing = [f.name for f in files if not f.exists()]
        if missing:
            raise MergeInputError(f"{model_dir}: the index names missing files: {', '.join(missing[:3])}")
        return files
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        others = sorted(p.name for p in model_dir.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        found = f" (found {', '.join(others[:3])}: only safetensors files are read, never pickles)" if others else ""
        raise MergeInputError(f"{model_dir}: no *.safetensors weights{found}")
    return files


def read_header(path: Path) -> list[TensorInfo]:
    """The tensors of one safetensors file (names, shapes, dtypes, where their bytes are), from its header alone."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise ValueError(f"a header of {length:,} bytes in a file of {size:,}")
            header = json.loads(file.read(length))
        infos = []
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            if entry["dtype"] not in DTYPES:
                raise ValueError(f"tensor {name!r} is {entry['dtype']}, a dtype llm2 does not merge")
            begin, end = (int(v) for v in entry["data_offsets"])
            info = TensorInfo(name, path, tuple(int(v) for v in entry["shape"]), entry["dtype"], 8 + length + begin)
            if end - begin != info.nbytes or info.offset + info.nbytes > size or begin < 0:
                raise ValueError(f"tensor {name!r}'s offsets do not fit its shape or the file")
            infos.append(info)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, struct.error) as exc:
        raise MergeInputError(f"{path}: cannot be read as safetensors ({type(exc).__name__}: {exc})") from None
    return infos


def tensor_table(model_dir: Path) -> dict[str, TensorInfo]:
    """Every tensor of a model, from the files' headers only (nothing is loaded)."""
    return {info.name: info for path in weight_files(model_dir) for info in read_header(path)}


def small_files(model_dir: Path, names: Sequence[str] = SMALL_FILE_NAMES) -> dict[str, bytes]:
    """The model's files (not its weights or their index) whose names match ``names``, read."""
    return {path.name: path.read_bytes() for path in sorted(Path(model_dir).iterdir())
            if path.is_file() and path.suffix not in WEIGHT_SUFFIXES and path.name != INDEX_FILE
            and any(fnmatch.fnmatchcase(path.name, pattern) for pattern in names)}


class OpenModel:
    """A model opened for merging: its safetensors files mapped into memory (read-only, copy-on-write, paged in on
    demand, no file descriptor kept) and its small files read. A process forked later reads it all without opening
    a file."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.tensors = tensor_table(self.directory)
        self._maps = {path: torch.UntypedStorage.from_file(str(path), shared=False, nbytes=path.stat().st_size)
                      for path in {info.file for info in self.tensors.values()}}
        self.small_files = small_files(self.directory)

    def read(self, name: str) -> torch.Tensor:
        """A copy of one tensor; the pages it was read from are handed back, so memory holds only the copy."""
        info = self.tensors[name]
        storage = self._maps[info.file]
        mapped = torch.empty(0, dtype=torch.uint8).set_(storage, info.offset, (info.nbytes,))
        tensor = mapped.clone().view(DTYPES[info.dtype]).reshape(info.shape)
        del mapped
        if _MADVISE is not None and info.nbytes:
            start = storage.data_ptr() + info.offset
            aligned = start - start % _PAGE
            _MADVISE(aligned, info.nbytes + start - aligned, _MADV_DONTNEED)  # clean pages: read again if needed
        return tensor


def check_compatible(base: dict[str, TensorInfo], experts: Sequence[dict[str, TensorInfo]],
                     expert_names: Sequence[str]) -> None:
    for label, table in zip(expert_names, experts):
        missing = [name for name in base if name not in table]
        if missing:
            raise MergeInputError(f"expert {label} lacks {len(missing)} of the base's tensors, e.g. {missing[0]!r}")
        for name, info in base.items():
            if table[name].shape != info.shape:
                raise MergeInputError(f"tensor {name!r} has shape {list(table[name].shape)} in expert {label} but "
                                      f"{list(info.shape)} in the base")


def plan_shards(infos: Sequence[TensorInfo], max_shard_bytes: int) -> list[list[TensorInfo]]:
    """Consecutive tensors in shards of at most ``max_shard_bytes`` (a larger tensor gets a shard of its own)."""
    shards: list[list[TensorInfo]] = [[]]
    size = 0
    for info in infos:
        if shards[-1] and size + info.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(info)
        size += info.nbytes
    return shards


def _header(infos: Sequence[TensorInfo]) -> bytes:
    entries: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for info in infos:
        entries[info.name] = {"dtype": info.dtype, "shape": list(info.shape),
                              "data_offsets": [offset, offset + info.nbytes]}
        offset += info.nbytes
    text = json.dumps(entries, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(text)) + text


def _write_tensor(file: Any, tensor: torch.Tensor) -> None:
    file.write(tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)


def merge_streaming(fn: Callable[..., Any], base_model: OpenModel | str | Path,
                    expert_models: Sequence[OpenModel | str | Path], out_dir: str | Path,
                    max_shard_bytes: int = DEFAULT_SHARD_BYTES, seed: int = 0, device: str = "cpu") -> MergeReport:
    """Merge the experts into the base model with ``fn(name, base, experts)``, one tensor at a time, into the Hugging
    Face model directory ``out_dir``. Models are directories or ``OpenModel``s (then no file is opened but the
    merged directory's).

    ``fn`` gets float32 tensors on ``device``; its result is written in the base tensor's dtype. Integer tensors
    are copied from the base. torch's generator is seeded with ``seed`` first. A result that breaks the contract
    raises CandidateError (stage ``train``) naming the parameter.
    """
    out_dir = Path(out_dir)
    if not expert_models:
        raise MergeInputError("name at least one expert model")
    base_open = base_model if isinstance(base_model, OpenModel) else OpenModel(base_model)
    experts_open = [m if isinstance(m, OpenModel) else OpenModel(m) for m in expert_models]
    base = base_open.tensors
    check_compatible(base, [m.tensors for m in experts_open], [str(m.directory) for m in experts_open])
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.glob("*.safetensors")):
        raise MergeInputError(f"{out_dir} already holds safetensors weights; merge into an empty directory")

    shards = plan_shards(list(base.values()), max_shard_bytes)  # the merged model has the base's names and dtypes
    names = (["model.safetensors"] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    torch.manual_seed(seed)
    merged_count = total = 0
    weight_map: dict[str, str] = {}
    for shard, file_name in zip(shards, names):
        partial = out_dir / (file_name + ".partial")
        with open(partial, "wb") as file:
            file.write(_header(shard))
            for out in shard:
                tensor = base_open.read(out.name)
                if tensor.is_floating_point():
                    inputs = [model.read(out.name).to(device=device, dtype=torch.float32) for model in experts_open]
                    tensor = checked_merge(fn, out.name, tensor.to(device=device, dtype=torch.float32), inputs,
                                           "train", copy_inputs=False)
                    del inputs
                    merged_count += 1
                _write_tensor(file, tensor.to(dtype=DTYPES[out.dtype]))
                del tensor
                release_freed_memory()
                weight_map[out.name] = file_name
                total += out.nbytes
        os.replace(partial, out_dir / file_name)
    if len(shards) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    for name, content in base_open.small_files.items():
        (out_dir / name).write_bytes(content)
    return MergeReport(tuple(names), len(base), merged_count, total)
