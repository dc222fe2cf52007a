"""An outside task for the held-out verdict's tests (written as tests/example_task.py is): its numbers are exactly
what the candidate makes of each setting, so a test knows every difference in advance.

A candidate is ``rule(level) -> [4]`` where ``level`` is a tensor of four copies of the setting's level; training
runs it once and hands the result back; the fitness is its mean, plus seed noise of standard deviation ``noise``
(0 by default: every seed gives identical numbers, a deterministic task). The held-out settings are levels 0 to 5.
"""

from dataclasses import dataclass, field, replace

import torch

from llm2.task_api.base import Baseline, Contract, EvalSetting, Metrics, TaskTexts, TensorSpec, TrainOutput
from llm2.task_api.checks import per_example_losses
from llm2.tasks.defaults import TaskBase


@dataclass(frozen=True)
class Settings:
    level: int = field(default=6, metadata={"help": "what the candidate is shown"})
    noise: float = field(default=0.0, metadata={"help": "standard deviation of the fitness over seeds"})


class Scorer:
    def __init__(self, settings: Settings):
        self.settings = settings

    def score(self, output: TrainOutput, quick: bool = False) -> Metrics:
        fitness = output.weights["value"].mean().item() + self.settings.noise * output.weights["jitter"].item()
        return Metrics(fitness=fitness, values={})

    def reference_metrics(self) -> Metrics:
        return Metrics(fitness=0.0, values={})


class Levels(TaskBase):
    name = "levels"
    settings_type = Settings
    contract = Contract(arguments=("level",), example_name="rule",
                        description="def rule(level) -> torch.Tensor  # [4] in, [4] out")
    texts = TaskTexts(kind="rule", description="Score well at every level.", fitness="the rule's mean value",
                      fitness_name="the value")
    baselines = {"flat": Baseline("flat", "def flat(level):\n    return level * 0.0\n")}
    reference_baseline = "flat"
    discovery_baselines = ("flat",)

    def prepare(self, settings: Settings) -> None:
        pass

    def training_data(self, settings: Settings):
        return torch.full((4,), float(settings.level))

    def output_spec(self, training) -> dict:
        return {"value": TensorSpec((4,), "float32"), "jitter": TensorSpec((), "float32")}

    def check_contract(self, fn, training) -> None:
        per_example_losses(fn, (torch.zeros(4, requires_grad=True),), 4, "on a batch of 4", "contract")

    def warm_up(self, settings, data) -> None:
        pass

    def train(self, fn, training, setting: EvalSetting, checkpoint=None) -> TrainOutput:
        value = fn(training).detach().float().reshape(4).clone()
        jitter = torch.randn((), generator=torch.Generator().manual_seed(1000 + setting.seed))
        return TrainOutput({"value": value, "jitter": jitter}, [0.0], 1)

    def scorer(self, settings: Settings) -> Scorer:
        return Scorer(settings)

    def heldout_settings(self, settings: Settings) -> list[Settings]:
        return [replace(settings, level=level) for level in range(6) if level != settings.level]
