"""``TaskBase``: the parts of a task most tasks share, so that a new task writes only what is its own."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

from llm2.task_api import settings as settings_module
from llm2.task_api.base import Metrics, MetricColumn, Runtime, TensorSpec
from llm2.task_api.optional import OptionalParts


class TaskBase(OptionalParts):
    """Defaults for the Task protocol (llm2.task_api.base.Task), its optional parts included (OptionalParts).
    Subclasses set the class attributes and write ``prepare``, ``training_data``, ``output_spec``,
    ``check_contract``, ``train`` and ``scorer``."""

    name: str = "task"
    metric_columns: tuple[MetricColumn, ...] = ()
    offline_proposer: str | None = None
    probe_fraction: float = 0.25
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

    # -- settings --------------------------------------------------------------------------------------------------
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

    def export_usage(self, example: str, file_name: str) -> str:
        """Lines for the exported module's docstring on how to use a function (tasks add their own)."""
        return ""


def spec_of(weights: Mapping[str, Any]) -> dict[str, TensorSpec]:
    """The TensorSpec of a state dict (torch tensors), e.g. of a task's reference model."""
    return {name: TensorSpec(tuple(t.shape), str(t.dtype).removeprefix("torch.")) for name, t in weights.items()}
