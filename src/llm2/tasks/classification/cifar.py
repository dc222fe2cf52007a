"""CIFAR-10 from a local copy of its standard python version (``cifar-10-batches-py``); nothing is downloaded.

The batches are pickles, and unpickling can call any importable function: they are read with an unpickler that
resolves only the few numpy names a batch needs (an array and its dtype), so a planted file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
IMAGE_SHAPE = (3, 32, 32)
MAX_BATCH_BYTES = 64 << 20  # a real batch is about 31 MB

_core = getattr(np, "_core", None) or np.core
_reconstruct, _frombuffer = _core.multiarray._reconstruct, _core.numeric._frombuffer  # numpy's array unpicklers
# (module, name) -> what it may resolve to; numpy 1 pickles name numpy.core, numpy 2 names numpy._core
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,  # pickle protocol 5
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class CifarFormatError(ValueError):
    """The directory or a batch file is not CIFAR-10's python version; the message says what is wrong."""


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only numpy's array reconstruction; any other global (os.system, builtins.eval, ...) is refused."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle's hook
        found = _ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refused to load {module}.{name} from a CIFAR batch")
        return found


def restricted_loads(data: bytes) -> object:
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


def batches_folder(data_dir: str) -> Path:
    """The ``cifar-10-batches-py`` folder: ``data_dir`` itself or its child of that name."""
    root = Path(data_dir).expanduser()
    for candidate in (root / FOLDER, root):
        if (candidate / TEST_BATCH).is_file():
            return candidate.resolve()
    raise CifarFormatError(f"no CIFAR-10 python batches under {root} (expected {root / FOLDER / TEST_BATCH}; "
                           "download and unpack cifar-10-python.tar.gz there yourself)")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: images uint8 [n, 3, 32, 32] and labels int64 [n]."""
    size = path.stat().st_size
    if size > MAX_BATCH_BYTES:
        raise CifarFormatError(f"{path} is {size:,} bytes, more than a CIFAR-10 batch can be")
    try:
        batch = restricted_loads(path.read_bytes())
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise CifarFormatError(f"{path} is not a readable CIFAR-10 batch: {exc}") from None
    if not isinstance(batch, dict):
        raise CifarFormatError(f"{path} holds a {type(batch).__name__}, not a CIFAR-10 batch dictionary")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise CifarFormatError(f"{path}: 'data' must be a uint8 array [n, 3072]")
    if not isinstance(labels, list) or len(labels) != len(data) or \
            not all(isinstance(v, int) and 0 <= v < 10 for v in labels):
        raise CifarFormatError(f"{path}: 'labels' must be a list of {len(data)} integers in 0..9")
    return data.reshape(-1, *IMAGE_SHAPE), np.asarray(labels, dtype=np.int64)


def read_cifar10(data_dir: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels) from the five training batches and the test batch."""
    folder = batches_folder(data_dir)
    missing = [name for name in TRAIN_BATCHES if not (folder / name).is_file()]
    if missing:
        raise CifarFormatError(f"{folder} lacks {', '.join(missing)}")
    parts = [read_batch(folder / name) for name in TRAIN_BATCHES]
    test_images, test_labels = read_batch(folder / TEST_BATCH)
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), test_images,
            test_labels)


def fingerprint(data_dir: str) -> str:
    """Names, sizes and modification times of the batch files: the cache is rebuilt when they change."""
    folder = batches_folder(data_dir)
    stats = [(name, (folder / name).stat()) for name in (*TRAIN_BATCHES, TEST_BATCH) if (folder / name).is_file()]
    return f"{folder}|" + "|".join(f"{name}:{s.st_size}:{s.st_mtime_ns}" for name, s in stats)
