"""The settings of one discovery run: what the CLI fills in and what the archive records."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm2.discovery.temperature import Temperatures


@dataclass(frozen=True)
class DiscoveryConfig:
    task: str = "preference-synthetic"  # a registered name, or path/to/task.py:ClassName
    task_settings: dict[str, Any] = field(default_factory=dict)  # the task's settings, every field (recorded)
    proposer: str = "symbolic"
    proposer_options: dict[str, Any] = field(default_factory=dict)  # model, base_url, prices... (no secrets)
    generations: int = 12
    population: int = 4
    history: str = "full"  # full | topk
    top_k: int = 8
    recent: int = 4  # with history=topk, how many of the latest candidates are shown with their feedback
    context_tokens: int | None = None  # the proposer's context; None: as the server reports it, else unbounded
    temperature: float = 0.8
    seed: int = 0  # seeds the proposer's requests
    seeds: int = 2  # training seeds per candidate: fitness is their mean
    baselines: tuple[str, ...] | None = None  # None: the task's discovery baselines
    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    timeout_s: float = 60.0  # one evaluation
    cascade: bool = True
    max_reasks: int = 2
    prompt_dir: str | None = None
    allow_missing: tuple[str, ...] = ()  # sandbox layers the user explicitly let go (recorded, shown in reports)
    fingerprints: bool = True  # behavioural duplicates are not evaluated (where the task fingerprints candidates)
    rungs: bool = False  # successive halving over the task's fidelity rungs (discovery/rungs.py)
    race: bool = True  # seed racing: a proposal's other seeds only if its first could be the best (rungs.py)
    keep_checkpoints: int = 0  # keep the trained weights of this many best candidates (their first seed's)
    world_secret: str | None = None  # the fingerprint of the world secret the run's worlds were built with
    islands: int = 1  # sub-populations, each with its own conversation and parents (discovery/islands.py)
    migrate_every: int = 2  # generations between migrations (and resets of the weakest island)
    advice_every: int = 0  # every G generations the proposer rewrites its advice, kept if no worse (0: never)
    map_elites: bool = False  # parents drawn across the task's behaviour cells (discovery/elites.py)
    more_proposers: tuple[str, ...] = ()  # NAME or NAME:VALUE beside ``proposer``; a bandit picks (discovery/bandit.py)
    # label -> the options of one of ``more_proposers`` with its own server, model or key (absent: the first's shared)
    more_proposer_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    temperature_schedule: tuple[str, ...] = ()  # [PROPOSER=]SCHEDULE each (discovery/temperature.py); () : constant

    def __post_init__(self) -> None:
        problems = []
        if self.history not in ("full", "topk"):
            problems.append(f"history must be 'full' or 'topk', not {self.history!r}")
        for name in ("generations", "population", "seeds", "top_k", "islands", "migrate_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.context_tokens is not None and self.context_tokens < 64:
            problems.append(f"context_tokens must be at least 64, not {self.context_tokens}")
        if self.advice_every < 0:
            problems.append(f"advice_every must be 0 or more, not {self.advice_every}")
        if self.keep_checkpoints < 0:
            problems.append(f"keep_checkpoints must be 0 or more, not {self.keep_checkpoints}")
        if self.keep_checkpoints and self.executor != "local":
            problems.append("keeping checkpoints needs the local executor")
        if self.max_reasks < 0:
            problems.append(f"max_reasks must be 0 or more, not {self.max_reasks}")
        if not self.timeout_s > 0:
            problems.append(f"the evaluation timeout must be positive, not {self.timeout_s:g} s")
        if self.workers is not None and self.workers < 1:
            problems.append(f"workers must be at least 1, not {self.workers}")
        if self.prompt_dir is not None and not Path(self.prompt_dir).is_dir():
            problems.append(f"prompt directory {self.prompt_dir!r} does not exist")
        strays = sorted(set(self.more_proposer_options) - set(self.more_proposers))
        if strays:
            problems.append(f"options recorded for proposer(s) the run does not have: {', '.join(strays)}")
        if self.temperature_schedule:
            try:
                Temperatures(self.temperature_schedule, self.islands, self.proposer_labels(), self.temperature)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))

    def proposer_labels(self) -> tuple[str, ...]:
        """How each proposer is named on the candidates it writes: its name alone when it is the only one; beside
        others, the first one's name with its model or replay file, the others as given."""
        if not self.more_proposers:
            return (self.proposer,)
        options = self.proposer_options
        value = options.get("model") or options.get("path")
        return (self.proposer + (f":{value}" if value else ""), *self.more_proposers)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DiscoveryConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown setting(s) in the recorded config: {', '.join(unknown)}")
        values = dict(data)
        values.setdefault("race", False)  # a run recorded before seed racing went on without it
        for name in ("baselines", "allow_missing", "more_proposers", "temperature_schedule"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)

    def training_seeds(self) -> list[int]:
        return list(range(self.seeds))

    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1
