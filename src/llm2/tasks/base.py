"""What every task provides: the candidate contract, the settings of one evaluation, and the records passed on.

A task splits an evaluation in two halves so that scoring never runs candidate code (DESIGN.md §5):
``train`` runs the candidate and returns only tensors; ``score`` turns those tensors into metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:  # torch only for annotations: the records stay importable without paying for torch
    import torch


class CandidateError(Exception):
    """The candidate broke its contract; the message is shown to the proposer as is."""

    def __init__(self, message: str, stage: str = "contract"):
        super().__init__(message)
        self.stage = stage


@dataclass(frozen=True)
class Contract:
    """The function a candidate must define."""

    function_name: str
    arguments: tuple[str, ...]
    description: str  # signature, shapes and meaning, shown verbatim to the proposer
    allowed_imports: frozenset[str] = frozenset({"torch", "torch.nn.functional", "math"})


@dataclass(frozen=True)
class EvalSetting:
    """One evaluation point: the knobs that change the numbers."""

    beta: float = 0.05
    seed: int = 0  # training seed (dropout, batch order)
    world_seed: int = 0
    label_noise: float | None = None  # None: the task's default
    budget: float = 1.0  # fraction of the full training budget (the cascade's probe uses less)

    def replace(self, **changes: Any) -> "EvalSetting":
        return EvalSetting(**{**self.__dict__, **changes})


@dataclass
class TrainOutput:
    """All the candidate-importing side hands back: tensors and numbers, nothing callable."""

    weights: dict[str, torch.Tensor]
    loss_trace: list[float]
    steps: int
    stop_reason: str | None = None  # None: ran the whole budget; else why it was stopped early


@dataclass(frozen=True)
class Metrics:
    fitness: float  # higher is better; for preference tasks the mean gold reward
    kl: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


LossFn = Callable[..., "torch.Tensor"]


class Task(Protocol):
    name: str
    kind: str  # what the candidate is, in words ("preference optimization"), for the proposer's prompt
    description: str  # the task as the proposer is told it
    fitness_description: str  # what the fitness measures, for the proposer
    contract: Contract
    baselines: dict[str, str]  # name -> source code of the baseline, in the contract's form
    default_setting: EvalSetting
    probe_fraction: float  # share of the budget after which ``train`` calls its checkpoint

    def prepare(self, setting: EvalSetting) -> None:
        """Build or load whatever the setting needs (cached on disk); idempotent."""

    def check_contract(self, fn: LossFn) -> None:
        """Cheap unit checks on random inputs; raise CandidateError with a clear reason."""

    def train(self, fn: LossFn, setting: EvalSetting,
              checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
        """Run the candidate for ``setting.budget`` of the full budget.

        Stops early (``stop_reason`` set) when the loss or the weights become non-finite. ``checkpoint`` is called
        once, after ``probe_fraction`` of the budget, with the weights so far; if it returns False training stops
        there. May raise CandidateError (stage 'probe' or 'train') when the loss breaks the contract mid-run.
        """

    def score(self, output: TrainOutput, setting: EvalSetting, quick: bool = False) -> Metrics:
        """Compute metrics from the trained weights alone; never imports candidate code.

        ``quick`` scores on fewer held-out prompts, for the cascade's probe.
        """

    def collapse_reason(self, probe_metrics: Metrics, setting: EvalSetting) -> str | None:
        """Why a probe's metrics show a collapsed run (e.g. reward far below the reference), or None."""

    def reference_metrics(self, setting: EvalSetting) -> Metrics:
        """Metrics of the untrained starting point."""

    def heldout_settings(self, base: EvalSetting) -> list[EvalSetting]:
        """Settings off the discovery's fitness setting: other β, world seeds, label noise."""
