"""The parts of a task the core uses only when the task has them, each with its default, in one place.

``TaskBase`` (llm2.tasks.defaults) inherits ``OptionalParts``; a task that implements the protocol without it is
asked through ``optional(task, name)``, which falls back to the same default. The core never calls ``getattr`` on a
task for these itself.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from llm2.task_api.base import Descriptor, TradeOff


class OptionalParts:
    """Every optional part of a task, as a task without it behaves."""

    trade_off: TradeOff | None = None  # no trade-off: held-out verdicts compare single points
    descriptors: tuple[Descriptor, ...] = ()  # MAP-Elites axes over recorded metrics; (): ``--map-elites`` refuses
    # multi-fidelity rungs below the full evaluation, (share of the training budget, training seeds), lowest first;
    # () for none (``llm2 discover --rungs`` then evaluates at full fidelity)
    fidelity_rungs: tuple[tuple[float, int], ...] = ()
    prompt_dir: str | None = None  # the task's own prompt templates (llm2.discovery.prompts), beside the defaults
    # fingerprint(fn, data, settings) -> floats: the candidate's behaviour on a small probe, in the confined child;
    # None: no behavioural duplicates
    fingerprint: Callable[..., Sequence[float]] | None = None
    fingerprint_tolerance: float = 1e-4  # two fingerprints this close in every entry are the same behaviour
    fingerprint_note: str = "it behaves the same on the task's probe"  # why, for the proposer
    # the report's clusters of near-duplicates: fingerprints within this Euclidean distance of a cluster's best
    cluster_radius: float = 0.1
    # curves_text(curves) -> str: a candidate's training curves in a few words for its feedback; None: not shown
    curves_text: Callable[[dict[str, list[float]]], str] | None = None
    # warm_up(settings, data): before any candidate runs, import what training imports lazily; None: the sandbox
    # trains the reference baseline for a sliver of the budget (llm2.sandbox.warm_up)
    warm_up: Callable[[Any, Any], None] | None = None
    # the offline proposers this task ships, name -> "module:Class" (``--proposer NAME`` finds them through the task
    # registry, llm2.proposers.make_proposer); read from the task's class, so keep it a class attribute
    offline_proposers: Mapping[str, str] = MappingProxyType({})

    def hidden_paths(self) -> list[str]:
        """Files beneath the child's read roots (inside an installed package, say) that hold scoring data: the
        candidate's process is denied them."""
        return []

    def default_settings(self) -> Any:
        return self.settings_type()

    def can_pause(self, settings: Any) -> bool:
        """Whether ``train`` at these settings pauses where asked (``llm2.task_api.checkpoint``): its run at a share
        of the budget is then the first part of the whole run, so a candidate promoted from a rung trains on from
        the rung's cut instead of starting again. False: a promoted candidate is retrained from scratch."""
        return False

    def export_checkpoint(self, output: Any, settings: Any, out_dir: Any) -> dict[str, Any]:
        """``llm2 export --checkpoints``: write a kept candidate's ``output`` (a TrainOutput as the scorer saw it:
        its tensors, or its ``output_dir``) into the directory ``out_dir`` in the task's usual format; return facts
        for the model card's header (e.g. ``{"base_model": ..., "library_name": ...}``). Tasks whose weights have no
        such format keep this."""
        raise NotImplementedError(f"task {self.name} has no format for trained weights")

    def plot_objectives(self, task_spec: str, items: Sequence[tuple[str, str]], settings: Any,
                        out: Any) -> list[str]:
        """``llm2 plot objectives``: draw (name, code) items into the PNG ``out``; warnings back."""
        raise NotImplementedError(f"task {self.name} draws no picture of its objectives")

    def plot_results(self, path: Any, out: Any) -> list[str]:
        """``llm2 plot results``: draw an ``llm2 evaluate --json`` file into the PNG ``out``; notes back."""
        raise NotImplementedError(f"task {self.name} draws no picture of evaluation results")

    # the attributes these methods read, which every task has (llm2.task_api.base.Task)
    name: str
    settings_type: type


def optional(task: Any, name: str) -> Any:
    """The task's own ``name``, else the default of ``OptionalParts`` (a method bound to ``task``)."""
    if name not in _NAMES:
        raise AttributeError(f"{name!r} is not an optional part of a task")
    if hasattr(task, name):
        return getattr(task, name)
    default = getattr(OptionalParts, name)
    return default.__get__(task) if callable(default) and hasattr(default, "__get__") else default


_NAMES = frozenset(name for name in vars(OptionalParts) if not name.startswith("_"))
