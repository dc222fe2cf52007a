"""The knobs of the synthetic preference world, split by what they invalidate.

``PreferenceSettings`` are the task's settings (``--task-option key=value``): what one evaluation varies.
``WorldConfig`` decides what is built and cached on disk (its hash keys the cache); ``TrainConfig`` only changes
how a candidate is trained and scored, so tuning it never rebuilds a world.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class WorldConfig:
    # hidden generating process: the prompt's first token picks a topic, each topic is a Markov chain
    vocab_size: int = 48
    prompt_length: int = 6
    completion_length: int = 14
    topics: int = 8
    dirichlet_alpha: float = 0.3
    # reference (SFT) policy: a tiny causal transformer trained by maximum likelihood
    layers: int = 2
    d_model: int = 64
    heads: int = 4
    dropout: float = 0.1  # the reference's, in its supervised training (GPT-2's rate)
    reference_sequences: int = 20_000
    reference_epochs: int = 4
    reference_batch_size: int = 128
    reference_lr: float = 6e-3
    # gold reward, preference pairs (labelled per label-noise setting), held-out prompts
    reference_reward: float = 0.4  # the sigmoid offset is set so the reference scores about this
    pairs: int = 3000
    heldout_prompts: int = 512
    version: int = 4  # bump when the construction changes, so stale caches are not reused

    @property
    def sequence_length(self) -> int:
        return self.prompt_length + self.completion_length

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 16
    # Adam, constant. With the dropout below, 4e-4 gives dpo a gold reward of 0.77 (KL 3.0) at beta 0.05 in one
    # epoch, with dpo, hinge, ipo and discopop more than three seed deviations apart on the judge (with dropout 0.1,
    # 2e-4 moved the policy little and 5e-4 blurred dpo and hinge).
    lr: float = 4e-4
    # Dropout in the policy while it trains on the pairs. It spreads the log-ratio margin rho at the first steps,
    # and that spread decides DiscoPOP's fate: its loss is non-convex around x = beta * rho = 0 (min near -0.12,
    # max near 0.07), and at the first step it pushes the margins the way dpo does only once beta * std(rho) is
    # above about 0.15. The paper's outcomes (trains at beta 0.05, collapses at 0.01) put a real run's std(rho)
    # between about 3 and 15 nats. Measured at step 0 on 14-token completions: dropout 0.1 gives 2.4 nats (DiscoPOP
    # then stays at the reference at beta 0.05), 0.2 gives 3.5, 0.3 gives 4.7 (beta * std = 0.24 at beta 0.05,
    # 0.05 at 0.01), 0.4 gives 5.6. 0.3 is the smallest rate with a clear margin on both sides; more noise only
    # slows every loss down. The reference's own supervised training keeps GPT-2's 0.1.
    dropout: float = 0.3
    epochs: float = 1.0  # passes over the pairs at budget 1.0
    quick_prompts: int = 128  # held-out prompts scored when ``quick`` (the cascade's probe)
    # The judge: a completion's gold reward counts only as far as it reads as text of the world. A transition the
    # hidden process gives less than ``implausible_probability`` is one it would (almost) never make; a completion
    # may have as many of them as ``judge_quantile`` of the reference's own samples do (so the reference reads as
    # natural), and each one beyond that halves its score.
    implausible_probability: float = 1e-3
    judge_quantile: float = 0.95
    kl_coefficient: float = 0.01  # the kl-penalised fitness: gold reward minus this much per nat of KL
    # frontier-gap: dpo's frontier, traced once per setting by training dpo this many seeds at each beta multiple
    # to the largest budget and scoring its weights at every budget on the way (one run per beta and seed, not one
    # per budget: a run stopped at budget b is the first b of a longer one, same batches and dropout masks). The
    # betas reach 8x: in this world a larger beta trades better at low KL (dpo at 4x and 8x lies up to 0.014 above
    # the frontier of 0.5-2x at KL 1-2.7, measured), and without them slow losses (ipo, bco_pair) looked 0.01 above
    # dpo at the search setting while on its frontier held-out.
    frontier_seeds: int = 3
    frontier_betas: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    frontier_budgets: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
    # judge-peak: the run is this many times the setting's budget; its weights at these shares of it are handed
    # back, the best on the selection prompts (the first ``selection_prompts`` held-out prompts) is reported on
    # the others, so the maximum over checkpoints is not scored on the prompts that chose it
    peak_budgets: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    selection_prompts: int = 256


# judge-peak and frontier-gap cannot be won by leaving the reference faster (docs/fitness.md)
FITNESSES = ("judge", "gold-reward", "kl-penalised", "frontier-gap", "judge-peak")


@dataclass(frozen=True)
class PreferenceSettings:
    beta: float = field(default=0.05, metadata={"help": "β passed to the loss: the pull towards the reference"})
    world_seed: int = field(default=0, metadata={"help": "which synthetic world (generating process, reward, pairs)"})
    label_noise: float = field(default=0.2, metadata={
        "help": "share of preference labels that disagree with the gold reward, in [0, 0.5)"})
    fitness: str = field(default="frontier-gap", metadata={"help": f"what is maximised: {' | '.join(FITNESSES)}"})

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"beta must be positive, not {self.beta}")
        if not 0.0 <= self.label_noise < 0.5:
            raise ValueError(f"label_noise must be in [0, 0.5), not {self.label_noise}")
        if self.world_seed < 0:
            raise ValueError(f"world_seed must be 0 or more, not {self.world_seed}")
        if self.fitness not in FITNESSES:
            raise ValueError(f"fitness must be one of {', '.join(FITNESSES)}, not {self.fitness!r}")
