"""What a task is: everything specific to one kind of algorithm, in one place.

A task tells the rest of llm2 what a candidate must define (``Contract``), what the proposer is told
(``TaskTexts``), which known algorithms to compare with (``Baseline``), the knobs of one evaluation (its own frozen
settings dataclass), how to train a candidate and how to score the result, which numbers to report beside the
fitness (``MetricColumn``), and its held-out settings, figures and export format. The loop, archive, execution,
sandbox, report and commands know only these records.

An evaluation is split across processes so that scoring never runs candidate code and data used only for scoring
never reaches a process that does (docs/security.md):

- ``prepare`` runs in the trusted main process: build or load whatever the settings need and cache it on disk,
  keeping training data and scoring data in separate files.
- ``training_data``, ``check_contract``, ``train`` and ``output_spec`` run in a warm worker and the confined child it
  forks (or spawns) per candidate; they must never load scoring data.
- ``scorer`` runs in the trusted process that supervises the worker; it never imports candidate code and turns the
  tensors a child hands back into ``Metrics``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

from llm2.task_api.vocabulary import TENSOR_VOCABULARY, Vocabulary  # noqa: F401 - Vocabulary is part of this API

if TYPE_CHECKING:  # torch only for annotations: the records stay importable without paying for torch
    import torch


class CandidateError(Exception):
    """The candidate broke its contract; the message is shown to the proposer as is."""

    def __init__(self, message: str, stage: str = "contract"):
        super().__init__(message)
        self.stage = stage


@dataclass(frozen=True)
class Contract:
    """The function a candidate must define: exactly one top-level function taking ``arguments``, any name."""

    arguments: tuple[str, ...]
    example_name: str  # the name the texts use for it ("loss", "merge"); any name is accepted
    description: str  # signature, shapes and meaning, shown verbatim to the proposer
    # what the code may import and name; torch, F and math are bound before it runs (Vocabulary.preloaded)
    vocabulary: Vocabulary = TENSOR_VOCABULARY

    @property
    def signature(self) -> str:
        return f"def {self.example_name}({', '.join(self.arguments)})"

    @property
    def allowed_imports(self) -> frozenset[str]:
        return frozenset(self.vocabulary.modules)

    @property
    def preloaded(self) -> tuple[str, ...]:
        """Names the loader binds before the code runs (so the code may use them without importing)."""
        return tuple(self.vocabulary.preloaded)


@dataclass(frozen=True)
class Baseline:
    """A known algorithm in the contract's form: shown to the proposer and measured in every run."""

    name: str
    code: str
    formula: str = ""
    source: str = ""  # where it comes from (paper, library)


@dataclass(frozen=True)
class MetricColumn:
    """A named number a task reports beside the fitness (``Metrics.values[key]``)."""

    key: str
    label: str  # as shown in tables
    digits: int = 3
    better: str | None = None  # "higher" | "lower" | None: the direction in which the held-out check compares it


@dataclass(frozen=True)
class Descriptor:
    """One axis of the MAP-Elites grid (``llm2 discover --map-elites``): a recorded metric (``Metrics.values[key]``)
    cut at ``edges`` (ascending), so len(edges) + 1 bins; a value below edges[0] falls in bin 0."""

    key: str
    label: str  # as shown on the report's grid
    edges: tuple[float, ...]


@dataclass(frozen=True)
class Knob:
    """A setting the reference baseline is swept over to trace its frontier (``EvalSetting.replace`` applies it:
    ``budget`` is the training budget's share, any other name a field of the task's settings)."""

    name: str
    values: tuple[float, ...]
    relative: bool = False  # the values multiply the held-out setting's own value instead of replacing it


@dataclass(frozen=True)
class TradeOff:
    """A task whose fitness can be bought with a cost (a policy's distance from where it started, say): held-out
    verdicts then place each candidate against the reference baseline's frontier, traced by sweeping ``knobs``,
    at the candidate's own cost, instead of comparing single points."""

    cost: str  # the Metrics.values key that is paid (lower is cheaper)
    cost_label: str  # the cost in words, for verdicts and figures
    gains: tuple[str, ...]  # what is judged at matched cost: "fitness" and/or Metrics.values keys; the first heads
    knobs: tuple[Knob, ...]  # swept together (every combination) to trace the reference's frontier

    def knobs_text(self) -> str:
        """'beta × 0.25–4, budget 0.5–1'."""
        return ", ".join(f"{k.name} {'× ' if k.relative else ''}{min(k.values):g}–{max(k.values):g}"
                         for k in self.knobs)


@dataclass(frozen=True)
class TaskTexts:
    """What the proposer is told about the task; every text must be true of the task's fitness."""

    kind: str  # what a candidate is, in a few words ("preference optimization loss")
    description: str  # the task, a paragraph
    fitness: str  # what the fitness measures, a sentence or two
    fitness_name: str  # short, for tables and verdicts ("judge score")
    expertise: str = ""  # a line for the system prompt ("You are deeply familiar with ...")
    rules: str = ""  # extra rules for the code, one "- ..." line each


@dataclass(frozen=True)
class Runtime:
    """How a candidate's process is made: ``fork`` from a warm worker (CPU), or ``spawn`` fresh (CUDA)."""

    start: str = "fork"  # fork | spawn
    device: str = "cpu"  # cpu | cuda
    gpus: int = 0  # one worker per GPU when > 0
    # "pipe": the child sends its tensors over the channel; "file": it writes them to output.safetensors in its
    # scratch directory (large models), read only once the child is dead; "directory": ``train`` writes files into
    # a directory of its scratch and names it in ``TrainOutput.output_dir`` (a model in a format of its own, written
    # as it goes); once the child is dead the directory is checked (``output_names``, regular files only, parsable
    # safetensors headers, ``output_limit_bytes`` in all) and handed to the scorer whole
    output: str = "pipe"
    # "file": the largest file the child may write; "directory": the most its files may hold together (and so the
    # largest file it may write)
    output_limit_bytes: int | None = None
    # "directory": the file names it may hold (shell patterns): weights, configs and tokenizer files
    output_names: tuple[str, ...] = ("*.safetensors", "*.json", "tokenizer.model", "*.txt", "*.jinja")
    memory_bytes: int | None = None  # memory training needs beyond the worker's, when more than the sandbox's default


@dataclass(frozen=True)
class EvalSetting:
    """One evaluation point: the task's settings, the training seed and the share of the training budget."""

    task: Any  # the task's frozen settings dataclass
    seed: int = 0
    budget: float = 1.0  # fraction of the full training budget (the cascade's probe uses less)

    def replace(self, **changes: Any) -> "EvalSetting":
        """``seed`` and ``budget`` change this record; any other key changes the task's settings."""
        own = {k: changes.pop(k) for k in ("seed", "budget") if k in changes}
        task = dataclasses.replace(self.task, **changes) if changes else self.task
        return EvalSetting(task, own.get("seed", self.seed), own.get("budget", self.budget))

    def label(self) -> dict[str, Any]:
        """A flat, JSON-able description (the task's settings, then seed and budget), as the archive keeps it."""
        return {**dataclasses.asdict(self.task), "seed": self.seed, "budget": self.budget}


@dataclass
class TrainOutput:
    """All the candidate-importing side hands back: tensors and numbers, nothing callable."""

    weights: dict[str, "torch.Tensor"]
    loss_trace: list[float]
    steps: int
    stop_reason: str | None = None  # None: ran the whole budget; else why it was stopped early
    # Runtime(output="directory"): the directory ``train`` wrote, relative to its working directory (the child's
    # scratch); the scorer gets it checked and moved out of the scratch, as an absolute path, with ``weights`` empty
    output_dir: str | None = None
    # small training curves (name -> values, sub-sampled over the steps), for feedback and the report; untrusted
    curves: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str  # torch dtype name without the "torch." prefix ("float32")


@dataclass(frozen=True)
class Metrics:
    fitness: float  # higher is better
    values: dict[str, float] = field(default_factory=dict)  # the task's named numbers (its MetricColumns and more)


class Scorer(Protocol):
    """Scores trained weights for one setting; holds the scoring data; never runs candidate code."""

    def score(self, output: TrainOutput, quick: bool = False) -> Metrics:
        """Metrics from the weights alone; ``quick`` scores less (the cascade's probe)."""

    def reference_metrics(self) -> Metrics:
        """Metrics of the untrained starting point."""


class Task(Protocol):
    """What the core calls on every task. The optional parts, which a task may leave out, are declared with their
    defaults in ``llm2.task_api.optional.OptionalParts`` and read through ``optional(task, name)``: ``trade_off``
    (when set, ``llm2 heldout`` judges candidates on the reference's frontier), ``descriptors`` (MAP-Elites axes),
    ``fidelity_rungs`` with ``can_pause``, ``prompt_dir``, ``offline_proposers``,
    ``fingerprint`` with ``fingerprint_tolerance`` and ``fingerprint_note``, ``curves_text``, ``warm_up``,
    ``hidden_paths``, ``default_settings``, ``export_checkpoint``, ``plot_objectives`` and ``plot_results``."""

    name: str
    settings_type: type  # a frozen dataclass; every field has a default; values are JSON-able
    contract: Contract
    texts: TaskTexts
    baselines: Mapping[str, Baseline]
    reference_baseline: str  # the baseline every candidate is compared with (its leaderboard's reference row)
    discovery_baselines: tuple[str, ...]  # measured at the start of every discovery
    metric_columns: tuple[MetricColumn, ...]
    offline_proposer: str | None  # the proposer ``llm2 discover`` uses when none is named
    probe_fraction: float  # share of the budget after which ``train`` calls its checkpoint

    def runtime(self, settings: Any) -> Runtime: ...

    # -- trusted main process ------------------------------------------------------------------------------------
    def prepare(self, settings: Any) -> None:
        """Build or load what ``settings`` needs, cached on disk; idempotent; may take long the first time."""

    # -- training side: the warm worker and the confined child; never scoring data --------------------------------
    def training_data(self, settings: Any) -> Any:
        """The data a candidate trains on (loaded once per worker, before the child is forked)."""

    def output_spec(self, data: Any) -> dict[str, TensorSpec]:
        """The tensors ``train`` returns (names, shapes, dtypes): anything else from the child is refused."""

    def check_contract(self, fn: Callable[..., Any], data: Any) -> None:
        """Cheap unit checks of the candidate on small inputs; raise CandidateError with a clear reason."""

    def train(self, fn: Callable[..., Any], data: Any, setting: EvalSetting,
              checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
        """Run the candidate for ``setting.budget`` of the full budget.

        Stops early (``stop_reason`` set) when the loss or the weights become non-finite. ``checkpoint`` is called
        once, after ``probe_fraction`` of the budget, with the weights so far; if it returns False training stops
        there. May raise CandidateError (stage 'probe' or 'train') when the candidate breaks the contract mid-run.
        """

    # -- scoring side: the trusted supervisor ----------------------------------------------------------------------
    def scorer(self, settings: Any) -> Scorer: ...

    def collapse_reason(self, probe: Metrics, reference: Metrics, baseline_probe: float | None) -> str | None:
        """Why a probe shows a collapsed run, or None. ``reference``: the untrained start; ``baseline_probe``: the
        reference baseline's probe fitness at the same setting and seed, when the run has measured it."""

    # -- texts, held-out suite, figures, export ------------------------------------------------------------------
    def parse_settings(self, options: Mapping[str, str]) -> Any: ...

    def settings_from_dict(self, values: Mapping[str, Any]) -> Any: ...

    def texts_for(self, settings: Any) -> TaskTexts:
        """``texts`` as they hold for these settings (the fitness may be a setting)."""

    def setting_text(self, settings: Any) -> str:
        """The settings in a few words for the proposer and for tables."""

    def metrics_text(self, values: Mapping[str, float]) -> str:
        """The named numbers of one result in a few words, for the feedback after an evaluation."""

    def heldout_settings(self, settings: Any) -> list[Any]:
        """Settings off the discovery's own, each differing in one knob."""

    def figures(self, context: Any) -> list[Any]:
        """The task's own figures for the report (llm2.report.figures.FigureContext in, Figures out)."""

    def export_module(self, entries: Sequence[Any], run: Any, file_name: str) -> str:
        """The best candidates as a plain Python module (llm2.archive.export.ExportEntry in)."""

    def export_usage(self, example: str, file_name: str) -> str:
        """Lines for the exported module's docstring: how to use one of its functions outside llm2."""
