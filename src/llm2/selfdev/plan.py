"""The plan of one self-develop run: what the factory is, how much it writes, how its pairs are chosen and how it is
trained. Written to ``DIR/selfdev/plan.json`` when the run starts and read back, unchanged, when it resumes."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

PLAN_VERSION = 1
TUNINGS = ("auto", "full", "lora")
REJECTED_POOLS = ("valid", "all")
SFT_WEIGHT = 1.0  # with DPO; bench/self_develop.py: without it, one run in three lost most of its valid code
LORA_ABOVE_PARAMETERS = 100_000_000  # tuning "auto": LoRA for factories larger than this, full fine-tuning below


@dataclass(frozen=True)
class TrainingRecipe:
    """How the factory is trained on its pairs; None: the tuning's default (``resolved``)."""

    tuning: str = "auto"  # auto | full | lora
    objective: str | None = None  # None: TRL's own DPO loss; else a catalog name or FILE.py:NAME (ObjectiveDPOTrainer)
    beta: float | None = None
    epochs: float | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    # DPO plus this weight times the chosen completions' mean token NLL (Pang et al. 2024, iterative RPO): keeps the
    # chosen likely, where DPO alone may lower both sides and drift off valid code. DPO only (an objective is the
    # whole loss).
    sft_weight: float | None = None
    lora_rank: int = 16
    lora_alpha: int = 32
    max_pairs: int = 512  # pairs per iteration at most (chosen × rejected grows fast)

    def __post_init__(self) -> None:
        problems = []
        if self.tuning not in TUNINGS:
            problems.append(f"tuning must be one of {', '.join(TUNINGS)}, not {self.tuning!r}")
        if self.beta is not None and not (math.isfinite(self.beta) and self.beta > 0):
            problems.append(f"beta must be positive, not {self.beta}")
        if self.epochs is not None and not (math.isfinite(self.epochs) and self.epochs > 0):
            problems.append(f"epochs must be positive, not {self.epochs}")
        if self.learning_rate is not None and not (math.isfinite(self.learning_rate) and 0 < self.learning_rate < 1):
            problems.append(f"the learning rate must be in (0, 1), not {self.learning_rate}")
        if self.sft_weight is not None and not (math.isfinite(self.sft_weight) and self.sft_weight >= 0):
            problems.append(f"the SFT weight must be 0 or more, not {self.sft_weight}")
        if self.sft_weight and self.objective is not None:
            problems.append("an SFT term goes with TRL's DPO loss only; with an objective it would be that "
                            "objective plus something else")
        for name in ("batch_size", "lora_rank", "lora_alpha", "max_pairs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be at least 1, not {value}")
        if problems:
            raise ValueError("; ".join(problems))

    def resolved(self, parameters: int) -> TrainingRecipe:
        """Every value set: LoRA (β 0.01 as in the Self-Developing paper) for a large factory, full fine-tuning with a
        larger β and learning rate for a tiny one."""
        tuning = self.tuning if self.tuning != "auto" else ("lora" if parameters > LORA_ABOVE_PARAMETERS else "full")
        defaults = ({"beta": 0.01, "epochs": 2.0, "learning_rate": 1e-4, "batch_size": 4} if tuning == "lora" else
                    {"beta": 0.1, "epochs": 4.0, "learning_rate": 1e-3, "batch_size": 8})
        defaults["sft_weight"] = 0.0 if self.objective is not None else SFT_WEIGHT
        return dataclasses.replace(self, tuning=tuning, **{k: v if getattr(self, k) is None else getattr(self, k)
                                                           for k, v in defaults.items()})


@dataclass(frozen=True)
class SelfDevPlan:
    factory: str = "default"  # "default" (the offline factory built from the task) or a checkpoint / model id
    factory_config: dict[str, Any] = field(default_factory=dict)  # the default factory's TinyFactoryConfig
    iterations: int = 3  # refinements: samples are drawn at iterations 0 .. iterations
    samples: int = 64  # algorithms the factory writes per iteration
    temperatures: tuple[float, ...] = (1.2, 1.083, 0.967, 0.85)  # one per iteration, 0 .. iterations
    chosen_top: float = 0.03  # chosen: the best this share of the iteration's scored samples
    rejected_bottom: float = 0.10  # rejected: the worst this share of the pool
    rejected_pool: str = "all"  # all: every sample, failures ranked lowest | valid: among scored samples only
    refine: bool = True  # False: a control run; the factory is never trained, the same sampling happens
    seed: int = 0  # sampling and training seed
    sample_batch: int = 16  # completions generated together (a batch shares one seed)
    max_new_tokens: int = 256
    recipe: TrainingRecipe = field(default_factory=TrainingRecipe)
    version: int = PLAN_VERSION

    def __post_init__(self) -> None:
        problems = []
        if self.iterations < 0:
            problems.append(f"iterations must be 0 or more, not {self.iterations}")
        if self.samples < 2:
            problems.append(f"samples must be at least 2, not {self.samples}")
        if len(self.temperatures) != self.iterations + 1:
            problems.append(f"{self.iterations + 1} temperatures are needed (iterations 0..{self.iterations}), "
                            f"not {len(self.temperatures)}")
        if any(not (math.isfinite(t) and t >= 0) for t in self.temperatures):
            problems.append(f"temperatures must be 0 or more, not {list(self.temperatures)}")
        for name in ("chosen_top", "rejected_bottom"):
            if not 0 < getattr(self, name) <= 0.5:
                problems.append(f"{name.replace('_', '-')} must be in (0, 0.5], not {getattr(self, name)}")
        if self.rejected_pool not in REJECTED_POOLS:
            problems.append(f"rejected_pool must be one of {', '.join(REJECTED_POOLS)}, not {self.rejected_pool!r}")
        if self.sample_batch < 1 or self.max_new_tokens < 1:
            problems.append("sample_batch and max_new_tokens must be at least 1")
        if problems:
            raise ValueError("; ".join(problems))

    def temperature(self, iteration: int) -> float:
        return self.temperatures[iteration]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["temperatures"] = list(self.temperatures)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SelfDevPlan:
        values = dict(data)
        if values.get("version") != PLAN_VERSION:
            raise ValueError(f"plan version {values.get('version')!r}; this llm2 reads version {PLAN_VERSION}")
        values["recipe"] = TrainingRecipe(**values.get("recipe", {}))
        values["temperatures"] = tuple(values["temperatures"])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)


def temperature_schedule(text: str, iterations: int) -> tuple[float, ...]:
    """``1.2:0.85``: linear from the first to the last iteration; ``1.2,1.0,0.9,0.85``: one per iteration;
    ``1.0``: the same throughout. ValueError with the reason otherwise."""
    try:
        if ":" in text:
            start, end = (float(part) for part in text.split(":"))
            steps = max(iterations, 1)
            values = tuple(round(start + (end - start) * k / steps, 4) for k in range(iterations + 1))
        elif "," in text:
            values = tuple(float(part) for part in text.split(","))
        else:
            values = (float(text),) * (iterations + 1)
    except ValueError:
        raise ValueError(f"temperature {text!r} is not START:END, a comma-separated list, or one number") from None
    if len(values) != iterations + 1:
        raise ValueError(f"temperature {text!r} gives {len(values)} values; {iterations} iterations need "
                         f"{iterations + 1} (iterations 0..{iterations})")
    if any(not (math.isfinite(v) and v >= 0) for v in values):
        raise ValueError(f"temperatures must be 0 or more, not {text!r}")
    return values
