"""``TaskBase``: the parts of a task most tasks share, so that a new task writes only what is its own."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

from llm2.task_api import settings as settings_module
from llm2.task_api.base import Descriptor, Metrics, MetricColumn, Runtime, TensorSpec, TradeOff


class TaskBase:
    """Defaults for the Task protocol (llm2.task_api.base.Task). Subclasses set the class attributes and write
    ``prepare``, ``training_data``, ``output_spec``, ``check_contract``, ``train`` and ``scorer``."""

    name: str = "task"
    metric_columns: tuple[MetricColumn, ...] = ()
    offline_proposer: str | None = None
    trade_off: TradeOff | None = None  # no trade-off: held-out verdicts compare single points
    probe_fraction: float = 0.25
    descriptors: tuple[Descriptor, ...] = ()  # no behaviour axes: ``discover --map-elites`` refuses the task
    # multi-fidelity rungs below the full evaluation, (share of the training budget, training seeds), lowest first;
    # () for none (``llm2 discover --rungs`` then evaluates at full fidelity)
    fidelity_rungs: tuple[tuple[float, int], ...] = ()
    # The probe has collapsed when its fitness fell below the untrained start by more than this share of what the
    # reference baseline gained by the same point (see collapse_reason); None turns that rule off.
    collapse_share: float | None = 0.5
    collapse_floor: float = 0.0  # the relative rule's smallest margin (the probe's scoring noise)
    # Without the baseline's probe (e.g. in ``llm2 evaluate``): collapsed when this far below the start; None: off.
    collapse_margin: float | None = None

    def runtime(self, settings: Any) -> Runtime:
        return Runtime()

    def texts_for(self, settings: Any) -> Any:
        """The texts as they hold for ``settings`` (a task whose fitness is a setting says which one)."""
        return self.texts

    def warm_up(self, settings: Any, data: Any) -> None:
        """Before any candidate runs, in a warm worker (and in a spawned child, before it confines itself): import
        whatever training imports lazily. By default: train the reference baseline for a sliver of the budget."""
        from llm2.sandbox.warm_up import train_reference_briefly

        train_reference_briefly(self, settings, data)

    def export_checkpoint(self, output: Any, settings: Any, out_dir: Any) -> dict[str, Any]:
        """``llm2 export --checkpoints``: write a kept candidate's ``output`` (a TrainOutput as the scorer saw it:
        its tensors, or its ``output_dir``) into the directory ``out_dir`` in the task's usual format; return facts
        for the model card's header (e.g. ``{"base_model": ..., "library_name": ...}``). Tasks whose weights have no
        such format keep this."""
        raise NotImplementedError(f"task {self.name} has no format for trained weights")

    def hidden_paths(self) -> list[str]:
        """Files beneath the child's read roots (inside an installed package, say) that hold scoring data: the
        candidate's process is denied them."""
        return []

    # -- settings --------------------------------------------------------------------------------------------------
    def default_settings(self) -> Any:
        return self.settings_type()

    def parse_settings(self, options: Mapping[str, str]) -> Any:
        return settings_module.parse_settings(self.name, self.settings_type, options)

    def settings_from_dict(self, values: Mapping[str, Any]) -> Any:
        return settings_module.settings_from_dict(self.name, self.settings_type, values)

    def setting_text(self, settings: Any) -> str:
        return ", ".join(f"{f.name} = {getattr(settings, f.name)}" for f in dataclasses.fields(settings))

    def metrics_text(self, values: Mapping[str, float]) -> str:
        parts = []
        for column in self.metric_columns:
            value = values.get(column.key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                parts.append(f"{column.label} {value:.{column.digits}f}")
        return ", ".join(parts)

    # -- the cascade -----------------------------------------------------------------------------------------------
    def collapse_reason(self, probe: Metrics, reference: Metrics, baseline_probe: float | None) -> str | None:
        if not math.isfinite(probe.fitness):
            return "the probe's fitness is not a number"
        start = reference.fitness
        if baseline_probe is not None and self.collapse_share is not None and baseline_probe > start:
            floor = start - max(self.collapse_share * (baseline_probe - start), self.collapse_floor)
            if probe.fitness < floor:
                return (f"collapsed: the probe's fitness {probe.fitness:.3f} is below {floor:.3f}, the untrained "
                        f"start ({start:.3f}) minus {self.collapse_share:g} × what {self.reference_baseline} "
                        f"gained by then ({baseline_probe - start:+.3f})")
        elif self.collapse_margin is not None and probe.fitness < start - self.collapse_margin:
            return (f"collapsed: the probe's fitness {probe.fitness:.3f} is more than {self.collapse_margin:g} "
                    f"below the untrained start's {start:.3f}")
        return None

    # -- the end-of-run sentence -----------------------------------------------------------------------------------
    def fitness_noise(self, values: Mapping[str, float]) -> float:
        """How far apart two results' fitnesses may be and still be no difference (0: any difference counts)."""
        return 0.0

    def placement_text(self, values: Mapping[str, float]) -> str:
        """Where a result sits, in the task's words (e.g. against the reference's frontier); "" for nothing."""
        return ""

    # -- held-out suite, figures, export ---------------------------------------------------------------------------
    def heldout_settings(self, settings: Any) -> list[Any]:
        return []

    def figures(self, context: Any) -> list[Any]:
        return []

    def export_module(self, entries: Sequence[Any], run: Any, file_name: str) -> str:
        from llm2.archive.export import module_text

        return module_text(list(entries), run, self, file_name)

    def plot_objectives(self, task_spec: str, items: Sequence[tuple[str, str]], settings: Any,
                        out: Any) -> list[str]:
        """``llm2 plot objectives``: draw (name, code) items into the PNG ``out``; warnings back."""
        raise NotImplementedError(f"task {self.name} draws no picture of its objectives")

    def plot_results(self, path: Any, out: Any) -> list[str]:
        """``llm2 plot results``: draw an ``llm2 evaluate --json`` file into the PNG ``out``; notes back."""
        raise NotImplementedError(f"task {self.name} draws no picture of evaluation results")

    def export_usage(self, example: str, file_name: str) -> str:
        """Lines for the exported module's docstring on how to use a function (tasks add their own)."""
        return ""


def spec_of(weights: Mapping[str, Any]) -> dict[str, TensorSpec]:
    """The TensorSpec of a state dict (torch tensors), e.g. of a task's reference model."""
    return {name: TensorSpec(tuple(t.shape), str(t.dtype).removeprefix("torch.")) for name, t in weights.items()}
