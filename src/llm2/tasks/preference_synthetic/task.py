"""``preference-synthetic``: the synthetic preference world as an llm2 task (the default inner loop)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import torch

from llm2.tasks.base import EvalSetting, MetricColumn, Metrics, TaskTexts, TensorSpec, TrainOutput
from llm2.tasks.defaults import spec_of
from llm2.tasks.preference.common import EXPERTISE, PreferenceTask
from llm2.tasks.preference_synthetic.config import PreferenceSettings, TrainConfig, WorldConfig
from llm2.tasks.preference_synthetic.score import score_weights
from llm2.tasks.preference_synthetic.train import train_policy
from llm2.tasks.preference_synthetic.world import (TrainingWorld, World, load_training, load_world,
                                                   prepare_training)

HELDOUT_BETAS = (0.01, 0.025, 0.1, 0.5)
HELDOUT_WORLD_SEEDS = (1, 2)
HELDOUT_LABEL_NOISE = (0.1, 0.3)


class PreferenceSyntheticTask(PreferenceTask):
    name = "preference-synthetic"
    settings_type = PreferenceSettings
    texts = TaskTexts(
        kind="preference optimization loss",
        description=(
            "The task: offline preference optimization, as in RLHF from human preference pairs. A small language\n"
            "model (the policy) starts from a supervised reference model and is trained on pairs of completions for\n"
            "the same prompt, one preferred (chosen) over the other (rejected) by noisy human-like labels: about one\n"
            "label in five is wrong. Your loss is applied to each pair for one epoch."),
        fitness=("the mean reward of completions sampled from the trained policy on held-out prompts, scored by a\n"
                 "hidden gold reward model (0 to 1; higher is better). Moving far from the reference (high KL) is\n"
                 "not penalised in the fitness, but it is reported"),
        fitness_name="gold reward",
        expertise=EXPERTISE,
    )
    metric_columns = (MetricColumn("kl", "KL", 3, better="lower"),)
    collapse_margin = 0.15  # without dpo's probe: a probe this far below the reference's reward has collapsed

    def __init__(self, world_config: WorldConfig | None = None, train_config: TrainConfig | None = None):
        self.world_config = world_config or WorldConfig()
        self.train_config = train_config or TrainConfig()
        self._scorers: dict[tuple, "PreferenceScorer"] = {}

    # -- trusted main process ----------------------------------------------------------------------------------
    def prepare(self, settings: PreferenceSettings) -> None:
        prepare_training(self.world_config, settings.world_seed, settings.label_noise)

    # -- training side -----------------------------------------------------------------------------------------
    def training_data(self, settings: PreferenceSettings) -> TrainingWorld:
        data = load_training(self.world_config, settings.world_seed, settings.label_noise)
        # torch.optim imports torch._dynamo on its first use (~6 s here): pay that here, where warm workers load
        # their data before they fork a child per candidate, and not inside the first candidate's training.
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])
        return data

    def output_spec(self, data: TrainingWorld) -> dict[str, TensorSpec]:
        return spec_of(data.reference_weights)

    def train(self, fn: Callable[..., Any], data: TrainingWorld, setting: EvalSetting,
              checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
        return train_policy(fn, data, setting, self.train_config, self.probe_fraction, checkpoint)

    # -- scoring side ------------------------------------------------------------------------------------------
    def scorer(self, settings: PreferenceSettings) -> "PreferenceScorer":
        key = (settings.world_seed, settings.fitness)
        if key not in self._scorers:
            self._scorers[key] = PreferenceScorer(load_world(self.world_config, settings.world_seed),
                                                  self.train_config, settings)
        return self._scorers[key]

    # -- texts and the held-out suite --------------------------------------------------------------------------
    def setting_text(self, settings: PreferenceSettings) -> str:
        return f"β = {settings.beta:g}, world {settings.world_seed}, label noise {settings.label_noise:g}"

    def heldout_settings(self, settings: PreferenceSettings) -> list[PreferenceSettings]:
        """Settings that differ from ``settings`` in one knob each: β, then world seed, then label noise."""
        return ([replace(settings, beta=b) for b in HELDOUT_BETAS if b != settings.beta]
                + [replace(settings, world_seed=s) for s in HELDOUT_WORLD_SEEDS if s != settings.world_seed]
                + [replace(settings, label_noise=n) for n in HELDOUT_LABEL_NOISE if n != settings.label_noise])


class PreferenceScorer:
    """Samples the trained policy on the world's held-out prompts (trusted: holds the gold reward)."""

    def __init__(self, world: World, config: TrainConfig, settings: PreferenceSettings):
        self.world, self.config, self.settings = world, config, settings
        self._reference: Metrics | None = None

    def score(self, output: TrainOutput, quick: bool = False) -> Metrics:
        reward, kl, reward_std = score_weights(self.world, output.weights, self.config, quick)
        values = {"kl": kl, "reward_std": reward_std}
        if output.loss_trace:
            values["loss_final"] = output.loss_trace[-1]
        return Metrics(fitness=reward, values=values)

    def reference_metrics(self) -> Metrics:
        if self._reference is None:
            reward, kl, reward_std = score_weights(self.world, self.world.reference_weights, self.config)
            self._reference = Metrics(fitness=reward, values={"kl": kl, "reward_std": reward_std})
        return self._reference

