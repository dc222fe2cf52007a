"""The reward-design task's settings (``--task-option key=value``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llm2.tasks.reward_design.envs import DYNAMICS, ENVS

# Environment steps per evaluation: enough for the shaped baseline to succeed on every seed, few enough that an
# evaluation takes a few seconds on one core.
DEFAULT_STEPS = {"mountain_car": 100_000, "pendulum": 200_000}


@dataclass(frozen=True)
class RewardDesignSettings:
    env: str = field(default="mountain_car", metadata={
        "help": "mountain_car (MountainCarContinuous-v0: a sparse goal, shaping matters) or pendulum (Pendulum-v1)"})
    steps: int | None = field(default=None, metadata={
        "help": "environment steps of PPO training (none: 100,000 for mountain_car, 200,000 for pendulum)"})
    envs: int = field(default=64, metadata={"help": "environments stepped together as one batch"})
    dynamics: str = field(default="heldout", metadata={
        "help": "the dynamics the trained policy is scored on: heldout (physical parameters away from the "
                "training values), far (further out, partly beyond the randomisation bounds) or nominal (gymnasium's own)"})
    episodes: int = field(default=200, metadata={"help": "scoring episodes (the probe uses a quarter)"})
    eval_seed: int = field(default=0, metadata={
        "help": "seed of the scoring episodes' starts and dynamics (never shown to the proposer)"})

    def __post_init__(self) -> None:
        if self.env not in ENVS:
            raise ValueError(f"env must be one of {', '.join(ENVS)}, not {self.env!r}")
        if self.steps is not None and not 1_000 <= self.steps <= 50_000_000:
            raise ValueError(f"steps must be between 1,000 and 50,000,000, not {self.steps}")
        if not 1 <= self.envs <= 4096:
            raise ValueError(f"envs must be between 1 and 4096, not {self.envs}")
        if self.dynamics not in DYNAMICS:
            raise ValueError(f"dynamics must be one of {', '.join(DYNAMICS)}, not {self.dynamics!r}")
        if not 4 <= self.episodes <= 100_000:
            raise ValueError(f"episodes must be between 4 and 100,000, not {self.episodes}")
        if self.eval_seed < 0:
            raise ValueError(f"eval_seed must be >= 0, not {self.eval_seed}")

    @property
    def total_steps(self) -> int:
        return self.steps or DEFAULT_STEPS[self.env]
