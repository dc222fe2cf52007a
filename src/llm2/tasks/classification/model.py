"""The networks a candidate's loss trains: an MLP for digits and a CIFAR-style ResNet-18 (He et al. 2016)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from llm2.tasks.classification.settings import CLASSES

MLP_HIDDEN = 128


def digits_mlp(classes: int = CLASSES) -> nn.Module:
    """64 pixels -> 128 -> 128 -> classes: enough capacity to memorise 1,200 noisy labels."""
    return nn.Sequential(nn.Linear(64, MLP_HIDDEN), nn.ReLU(), nn.Linear(MLP_HIDDEN, MLP_HIDDEN), nn.ReLU(),
                         nn.Linear(MLP_HIDDEN, classes))


class BasicBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.shortcut = nn.Sequential()
        if stride != 1 or inputs != outputs:  # a 1x1 projection where the shape changes
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """The CIFAR variant: a 3x3 stem without max-pooling, four stages of two blocks (64, 128, 256, 512 channels)."""

    def __init__(self, classes: int = CLASSES):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        blocks, channels = [], 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(channels, width, stride), BasicBlock(width, width, 1)]
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(features, 1).flatten(1))


def build_model(name: str, classes: int = CLASSES) -> nn.Module:
    return digits_mlp(classes) if name == "mlp" else ResNet18(classes)


def float_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights and batch-norm statistics, on the CPU; without the batch counters (integers nothing reads)."""
    return {name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()
            if t.is_floating_point()}


def load_float_state(model: nn.Module, weights: dict[str, torch.Tensor]) -> nn.Module:
    """Load ``float_state``'s tensors; anything missing or extra is an error."""
    expected = float_state(model)
    missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or extra:
        raise ValueError(f"weights do not fit the network (missing {missing[:3]}, unexpected {extra[:3]})")
    model.load_state_dict(weights, strict=False)  # strict=False: only the batch counters stay as they are
    return model
