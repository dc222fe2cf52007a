"""A task written from docs/tasks.md alone, as a check that the page is enough: robust location estimation.

A candidate is an estimator ``estimate(samples) -> [batch]``: each row of ``samples`` [batch, n] holds draws around
a hidden centre with heavy-tailed (Student-t) noise, and the estimator returns one centre per row. The hidden
centres exist only in the scoring file; the fitness is minus the mean squared error of the estimates. The mean is
the reference; the median is the textbook robust answer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from llm2.task_api import cache, world_secret
from llm2.task_api.base import (Baseline, CandidateError, Contract, EvalSetting, MetricColumn, Metrics, TaskTexts,
                             TensorSpec, TrainOutput)
from llm2.tasks.defaults import TaskBase


@dataclass(frozen=True)
class Settings:
    tail: float = field(default=1.5, metadata={"help": "degrees of freedom of the Student-t noise (lower: wilder)"})
    batches: int = field(default=64, metadata={"help": "rows to estimate"})
    data_seed: int = field(default=0, metadata={"help": "seed of the centres and the draws"})

    def __post_init__(self):
        if self.tail <= 0:
            raise ValueError(f"tail must be positive, not {self.tail}")
        if self.batches < 1:
            raise ValueError(f"batches must be at least 1, not {self.batches}")


DRAWS = 40  # per row


def _paths(settings: Settings):
    # another world secret, other centres: named by its fingerprint, which a worker knows without the secret
    secret = world_secret.published_fingerprint()
    stem = f"docs-location-s{secret}-{settings.data_seed}-{settings.tail:g}-{settings.batches}"
    return [cache.cache_dir() / f"{stem}-train.pt", cache.cache_dir() / f"{stem}-score.pt"]


def _build(settings: Settings) -> list:
    # the hidden centres and the noise (which would give them back from the samples) come from the data seed and
    # the world secret, which only this trusted process reads: the public seed alone rebuilds neither
    seed = world_secret.derive_seed("docs-location", "centres", settings.data_seed)
    generator = torch.Generator().manual_seed(seed)
    centres = 10 * torch.randn(settings.batches, generator=generator)
    with torch.random.fork_rng(devices=[]):  # StudentT samples from the global generator: seed it, then restore
        torch.manual_seed(seed)
        noise = torch.distributions.StudentT(settings.tail).sample((settings.batches, DRAWS))
    samples = centres[:, None] + noise
    return [{"samples": samples}, {"centres": centres}]


class Scorer:
    def __init__(self, settings: Settings):
        self.centres = cache.load(_paths(settings)[1])["centres"]

    def score(self, output: TrainOutput, quick: bool = False) -> Metrics:
        errors = output.weights["estimates"].double() - self.centres.double()
        mse = float((errors ** 2).mean())
        return Metrics(fitness=-mse, values={"mse": mse, "worst": float(errors.abs().max())})

    def reference_metrics(self) -> Metrics:
        return self.score(TrainOutput({"estimates": torch.zeros(len(self.centres))}, [], 0))


class Location(TaskBase):
    name = "docs-location"
    settings_type = Settings
    contract = Contract(arguments=("samples",), example_name="estimate",
                        description="def estimate(samples) -> torch.Tensor  # samples [batch, n] float; return "
                                    "one estimate of each row's centre, shape [batch]")
    texts = TaskTexts(kind="robust location estimator",
                      description="Estimate the centre of each row of draws; the noise has heavy tails.",
                      fitness="minus the mean squared error of the estimates against the hidden centres",
                      fitness_name="-MSE", rules="- Use torch only; no randomness.")
    baselines = {"mean": Baseline("mean", "def mean(samples):\n    return samples.mean(dim=1)\n"),
                 "median": Baseline("median", "def median(samples):\n    return samples.median(dim=1).values\n")}
    reference_baseline = "mean"
    discovery_baselines = ("mean", "median")
    metric_columns = (MetricColumn("mse", "MSE", 4, better="lower"),
                      MetricColumn("worst", "worst error", 3, better="lower"))

    def prepare(self, settings: Settings) -> None:
        world_secret.fingerprint()  # publishes it, for the files' names
        cache.build_many_once(_paths(settings), lambda: _build(settings))

    def training_data(self, settings: Settings) -> torch.Tensor:
        return cache.load(_paths(settings)[0])["samples"]

    def output_spec(self, data: torch.Tensor) -> dict:
        return {"estimates": TensorSpec((data.shape[0],), "float32")}

    def check_contract(self, fn, data) -> None:
        self._estimates(fn, torch.randn(4, 9), "on a 4 × 9 batch", "contract")

    @staticmethod
    def _estimates(fn, samples: torch.Tensor, where: str, stage: str) -> torch.Tensor:
        try:
            estimates = fn(samples.clone())
        except Exception as exc:  # noqa: BLE001 - the candidate's failure, told to the proposer
            raise CandidateError(f"the function raised {type(exc).__name__}: {exc} ({where})", stage) from None
        if not isinstance(estimates, torch.Tensor) or tuple(estimates.shape) != (samples.shape[0],):
            raise CandidateError(f"the function must return a tensor of shape ({samples.shape[0]},) ({where})",
                                 stage)
        if not torch.isfinite(estimates).all():
            raise CandidateError(f"the estimates are not finite ({where})", stage)
        return estimates.detach().float()

    def train(self, fn, data, setting: EvalSetting, checkpoint=None) -> TrainOutput:
        # each training seed sees its own 80 % of every row's draws
        keep = torch.randperm(DRAWS, generator=torch.Generator().manual_seed(setting.seed))[:int(0.8 * DRAWS)]
        estimates = self._estimates(fn, data[:, keep], "on the training rows", "train")
        output = TrainOutput({"estimates": estimates}, [], 1)
        if checkpoint is not None and not checkpoint(output):
            output.stop_reason = "stopped by the probe"
        return output

    def scorer(self, settings: Settings) -> Scorer:
        return Scorer(settings)

    def heldout_settings(self, settings: Settings) -> list[Settings]:
        return [*(dataclasses.replace(settings, tail=tail) for tail in (1.0, 2.0, 3.0, 4.0)),
                *(dataclasses.replace(settings, data_seed=settings.data_seed + k) for k in (1, 2))]
