"""The images and labels of one setting, split into what training may see and what only the scorer may see.

Four cache files per setting, in two groups:

- training side: ``<base>.train-images.pt`` (the training images) and ``<base>.labels-seed<S>-noise<R>.pt`` (their
  labels after symmetric noise): all ``training_data`` ever loads;
- scoring side: ``<base>.test.pt`` (test images and their clean labels) and ``<base>.train-truth.pt`` (the clean
  labels of the training images, to measure how much of the noise a network memorised).

``<base>`` names the source: ``digits-<data_seed>`` (the split comes from the data seed) or ``cifar10-<hash of the
batch files>`` (CIFAR-10's own split). Noise is nested across rates: the examples corrupted at 0.2 are among those
corrupted at 0.4 for the same data seed, each with the same wrong class.

The digits split and the noise are drawn from seeds that mix the data seed with the world secret
(``llm2.task_api.world_secret``): a candidate that knows the data seed still cannot tell which labels were corrupted,
or to what. The cache folder is named by the secret's fingerprint.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from llm2.task_api import cache, world_secret
from llm2.tasks.classification.settings import CLASSES, ClassificationSettings

DIGITS_TEST = 597  # of scikit-learn's 1,797 digits: 1,200 train, 597 test
DIGITS_TRAIN = 1797 - DIGITS_TEST
CACHE_FORMAT = 1  # part of the cache folder's name: a change of the files' layout must not read old files
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class TrainingData:
    """What a candidate trains on: images and noisy labels, nothing else."""

    dataset: str
    images: torch.Tensor  # uint8 [n, ...] (digits: [n, 8, 8] in 0..16; CIFAR-10: [n, 3, 32, 32])
    labels: torch.Tensor  # int64 [n], some replaced by a wrong class
    classes: int = CLASSES


@dataclass(frozen=True)
class ScoringData:
    dataset: str
    test_images: torch.Tensor
    test_labels: torch.Tensor  # clean
    train_images: torch.Tensor
    train_labels: torch.Tensor  # as training saw them (noisy)
    train_truth: torch.Tensor  # the clean labels of the training images


@dataclass(frozen=True)
class CacheFiles:
    train_images: Path
    train_labels: Path
    test: Path
    train_truth: Path

    @property
    def training(self) -> tuple[Path, Path]:
        return self.train_images, self.train_labels


def digits_file() -> Path:
    """scikit-learn's bundled digits (test labels included): candidates' processes must not be able to read it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise ValueError("dataset digits needs scikit-learn (pip install scikit-learn)")
    return Path(spec.origin).resolve().parent / "datasets" / "data" / "digits.csv.gz"


def cache_files(settings: ClassificationSettings) -> CacheFiles:
    if settings.dataset == "digits":
        base = f"digits-{settings.data_seed}"
    else:
        from llm2.tasks.classification.cifar import fingerprint

        base = "cifar10-" + hashlib.sha256(fingerprint(settings.data_dir).encode()).hexdigest()[:16]
    # any process: named by the published fingerprint (a worker never reads the secret)
    folder = cache.cache_dir() / f"classification-v{CACHE_FORMAT}-s{world_secret.published_fingerprint()}"
    noise = f"seed{settings.data_seed}-noise{settings.label_noise:.6g}"
    return CacheFiles(folder / f"{base}.train-images.pt", folder / f"{base}.labels-{noise}.pt",
                      folder / f"{base}.test.pt", folder / f"{base}.train-truth.pt")


def prepare_data(settings: ClassificationSettings) -> CacheFiles:
    """Build the setting's cache files once (trusted main process)."""
    world_secret.fingerprint()  # publishes it, for the files' names
    files = cache_files(settings)
    cache.build_many_once([files.train_images, files.train_truth, files.test], lambda: _split(settings))
    cache.build_once(files.train_labels, lambda: {"labels": _noisy_labels(settings, files)})
    return files


@functools.lru_cache(maxsize=4)
def _load_training(train_images: Path, train_labels: Path, dataset: str) -> TrainingData:
    return TrainingData(dataset, cache.load(train_images)["images"], cache.load(train_labels)["labels"])


def load_training(settings: ClassificationSettings) -> TrainingData:
    """The training side's two files only; kept in memory (a warm worker loads once, then forks per candidate)."""
    return _load_training(*cache_files(settings).training, settings.dataset)


def load_scoring(settings: ClassificationSettings) -> ScoringData:
    world_secret.fingerprint()  # trusted: the secret in use names the files
    files = cache_files(settings)
    test = cache.load(files.test)
    return ScoringData(settings.dataset, test["images"], test["labels"], cache.load(files.train_images)["images"],
                       cache.load(files.train_labels)["labels"], cache.load(files.train_truth)["labels"])


def to_inputs(images: torch.Tensor, dataset: str) -> torch.Tensor:
    """The network's input for stored images: digits flattened to [n, 64] in [0, 1]; CIFAR-10 standardised."""
    if dataset == "digits":
        return images.reshape(len(images), -1).float() / 16.0
    mean = torch.tensor(CIFAR_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def corrupt(labels: torch.Tensor, rate: float, classes: int, generator: torch.Generator) -> torch.Tensor:
    """Symmetric noise: exactly round(rate·n) labels, chosen at random, replaced by a uniformly random other class.

    The order of corruption and every example's wrong class are drawn for all examples whatever the rate, so
    a lower rate corrupts a subset of what a higher one does.
    """
    n = len(labels)
    order = torch.randperm(n, generator=generator)
    offsets = torch.randint(1, classes, (n,), generator=generator)
    chosen = order[:round(rate * n)]
    noisy = labels.clone()
    noisy[chosen] = (labels[chosen] + offsets[chosen]) % classes
    return noisy


def _split(settings: ClassificationSettings) -> list[dict]:
    if settings.dataset == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.as_tensor(digits.images).to(torch.uint8)
        labels = torch.as_tensor(digits.target).long()
        split = world_secret.derive_seed("classification", "digits split", settings.data_seed)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(split))
        test, train = order[:DIGITS_TEST], order[DIGITS_TEST:]
        train_images, train_labels = images[train], labels[train]
        test_images, test_labels = images[test], labels[test]
    else:
        from llm2.tasks.classification.cifar import read_cifar10

        arrays = read_cifar10(settings.data_dir)
        train_images, train_labels, test_images, test_labels = (torch.from_numpy(a.copy()) for a in arrays)
    return [{"images": train_images.contiguous()}, {"labels": train_labels},
            {"images": test_images.contiguous(), "labels": test_labels}]


def _noisy_labels(settings: ClassificationSettings, files: CacheFiles) -> torch.Tensor:
    clean = cache.load(files.train_truth)["labels"]
    generator = torch.Generator().manual_seed(world_secret.derive_seed("classification", "noise", settings.data_seed))
    return corrupt(clean, settings.label_noise, CLASSES, generator)
