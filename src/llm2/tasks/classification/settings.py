"""The classification task's settings (``--task-option key=value``) and the training recipe they resolve to."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

DATASETS = ("digits", "cifar10")
CLASSES = 10  # both datasets have ten classes


@dataclass(frozen=True)
class Recipe:
    """The fixed training budget of one dataset: every candidate is trained exactly like this."""

    model: str  # "mlp" | "resnet18"
    optimizer: str  # "adam" | "sgd" (momentum 0.9, cosine decay to zero)
    lr: float
    epochs: int
    batch_size: int
    weight_decay: float = 0.0
    augment: bool = False  # random crop (padding 4) and horizontal flip
    quick_test: int | None = None  # test images the cascade's probe is scored on (None: all)
    fit_sample: int | None = None  # training images the scorer measures the fit to noisy labels on (None: all)


# digits: large enough a network and long enough a run that cross-entropy fits the wrong labels (train accuracy on
# noisy labels well above the 60 % that are right at noise 0.4) and loses test accuracy, while one evaluation
# stays near a second on one core.
RECIPES = {
    "digits": Recipe("mlp", "adam", lr=3e-3, epochs=60, batch_size=128),
    # CIFAR-10: the usual ResNet-18 recipe of the noisy-label literature (SGD 0.1, momentum 0.9, weight decay 5e-4,
    # crop and flip), for a short budget: on one GPU an evaluation takes minutes, not the literature's hours.
    "cifar10": Recipe("resnet18", "sgd", lr=0.1, epochs=20, batch_size=128, weight_decay=5e-4, augment=True,
                      quick_test=2000, fit_sample=10000),
}


@dataclass(frozen=True)
class ClassificationSettings:
    # 0.4 by default: with clean labels every reasonable loss reaches about the same accuracy on digits, while at
    # 40 % symmetric noise cross-entropy memorises the wrong labels and robust losses (MAE, GCE, SCE) do clearly
    # better, so there is room for a proposer to find something (as in the robust-loss literature).
    label_noise: float = field(default=0.4, metadata={
        "help": "share of training labels replaced by a uniformly random other class, in [0, 0.9)"})
    data_seed: int = field(default=0, metadata={
        "help": "seed of the train/test split (digits) and of which labels are corrupted"})
    dataset: str = field(default="digits", metadata={
        "help": "digits (scikit-learn's 8x8 digits, an MLP, CPU, about a second) or cifar10 (ResNet-18, needs "
                "data_dir; on a GPU when there is one)"})
    data_dir: str | None = field(default=None, metadata={
        "help": "local directory holding cifar-10-batches-py (the standard python version), or that folder "
                "itself; nothing is downloaded. With dataset digits it adds CIFAR-10 to the held-out settings"})
    epochs: int | None = field(default=None, metadata={
        "help": "training epochs (none: the dataset's default, 60 for digits, 20 for cifar10)"})
    lr: float | None = field(default=None, metadata={
        "help": "learning rate (none: the dataset's default, Adam 0.003 for digits, SGD 0.1 for cifar10)"})

    def __post_init__(self) -> None:
        # with ten classes the true class stays the most frequent label only while noise < 0.9
        if not (isinstance(self.label_noise, (int, float)) and 0.0 <= self.label_noise < 0.9):
            raise ValueError(f"label_noise must be in [0, 0.9), not {self.label_noise!r}")
        if self.data_seed < 0:
            raise ValueError(f"data_seed must be >= 0, not {self.data_seed}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, not {self.dataset!r}")
        if self.dataset == "cifar10" and not self.data_dir:
            raise ValueError("dataset cifar10 needs data_dir=DIRECTORY holding cifar-10-batches-py "
                             "(nothing is downloaded)")
        if self.epochs is not None and not 1 <= self.epochs <= 1000:
            raise ValueError(f"epochs must be between 1 and 1000, not {self.epochs}")
        if self.lr is not None and not (math.isfinite(self.lr) and 0.0 < self.lr <= 10.0):
            raise ValueError(f"lr must be a positive number up to 10, not {self.lr}")

    @property
    def recipe(self) -> Recipe:
        base = RECIPES[self.dataset]
        return replace(base, epochs=self.epochs or base.epochs, lr=self.lr or base.lr)
