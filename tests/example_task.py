"""A whole llm2 task in one file (docs/tasks.md walks through it): robust regression.

A candidate is a loss ``loss(prediction, target) -> [batch]``; a line is fitted to data where a share of the targets
are wild outliers, and the fitness is minus the mean squared error on clean held-out data. Use it with
``llm2 discover --task tests/example_task.py:RobustRegression --proposer replay --replay replies.jsonl``.
"""

from dataclasses import dataclass, field

import torch

from llm2.task_api.base import (Baseline, Contract, EvalSetting, Metrics, MetricColumn, TaskTexts, TensorSpec,
                                 TrainOutput)
from llm2.task_api.checks import per_example_losses
from llm2.tasks.defaults import TaskBase


@dataclass(frozen=True)
class Settings:
    outliers: float = field(default=0.2, metadata={"help": "share of training targets replaced by wild values"})

    def __post_init__(self):
        if not 0 <= self.outliers < 1:
            raise ValueError(f"outliers must be in [0, 1), not {self.outliers}")


def data(seed: int, count: int, outliers: float) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, generator=generator)
    y = 2.0 * x + 1.0 + 0.1 * torch.randn(count, generator=generator)
    wild = torch.rand(count, generator=generator) < outliers
    return x, torch.where(wild, 50.0 * torch.randn(count, generator=generator), y)


class Scorer:
    def __init__(self):
        self.x, self.y = data(seed=99, count=256, outliers=0.0)  # held out: only the scorer ever makes it

    def score(self, output: TrainOutput, quick: bool = False) -> Metrics:
        error = ((output.weights["w"] * self.x + output.weights["b"] - self.y) ** 2).mean().item()
        return Metrics(fitness=-error, values={"mse": error})

    def reference_metrics(self) -> Metrics:
        return self.score(TrainOutput({"w": torch.zeros(()), "b": torch.zeros(())}, [], 0))


class RobustRegression(TaskBase):
    name = "robust-regression"
    settings_type = Settings
    contract = Contract(arguments=("prediction", "target"), example_name="loss",
                        description="def loss(prediction, target) -> torch.Tensor  # both [batch]; per-example losses")
    texts = TaskTexts(kind="regression loss", description="Fit a line to data with outliers.",
                      fitness="minus the mean squared error on clean held-out data", fitness_name="-MSE")
    baselines = {"squared": Baseline("squared", "def squared(prediction, target):\n"
                                                "    return (prediction - target) ** 2\n"),
                 "absolute": Baseline("absolute", "def absolute(prediction, target):\n"
                                                  "    return (prediction - target).abs()\n")}
    reference_baseline = "squared"
    discovery_baselines = ("squared", "absolute")
    metric_columns = (MetricColumn("mse", "MSE", 4, better="lower"),)

    def prepare(self, settings: Settings) -> None:
        pass  # nothing to build: training data comes from a seed in training_data

    def training_data(self, settings: Settings):
        return data(seed=0, count=512, outliers=settings.outliers)

    def output_spec(self, training) -> dict:
        return {"w": TensorSpec((), "float32"), "b": TensorSpec((), "float32")}

    def check_contract(self, fn, training) -> None:
        per_example_losses(fn, (torch.zeros(4, requires_grad=True), torch.ones(4)), 4, "on a batch of 4", "contract")

    def train(self, fn, training, setting: EvalSetting, checkpoint=None) -> TrainOutput:
        x, y = training
        w, b = torch.zeros((), requires_grad=True), torch.zeros((), requires_grad=True)
        optimizer = torch.optim.Adam([w, b], lr=0.05)
        trace = []
        for step in range(int(200 * setting.budget)):
            loss = per_example_losses(fn, (w * x + b, y), len(x), f"at step {step}", "train").mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            trace.append(loss.item())
        return TrainOutput({"w": w.detach().clone(), "b": b.detach().clone()}, trace, len(trace))

    def scorer(self, settings: Settings) -> Scorer:
        return Scorer()
