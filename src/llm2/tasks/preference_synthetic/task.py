"""``preference-synthetic``: the synthetic preference world as an llm2 task (the default inner loop)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from llm2.task_api import world_secret
from llm2.task_api.base import (Descriptor, EvalSetting, Knob, MetricColumn, Metrics, TaskTexts, TensorSpec,
                             TradeOff, TrainOutput)
from llm2.tasks.defaults import spec_of
from llm2.tasks.preference.common import EXPERTISE, PreferenceTask
from llm2.tasks.preference_synthetic.config import PreferenceSettings, TrainConfig, WorldConfig
from llm2.tasks.preference_synthetic.score import PolicyScores, judge_tolerance, score_weights
from llm2.tasks.preference_synthetic.train import train_policy
from llm2.tasks.preference_synthetic.world import (TrainingWorld, World, load_training, load_world,
                                                   prepare_training)

HELDOUT_BETAS = (0.01, 0.025, 0.1, 0.5)
HELDOUT_WORLD_SEEDS = (1, 2)
HELDOUT_LABEL_NOISE = (0.1, 0.3)

DESCRIPTION = (
    "The task: offline preference optimization, as in RLHF from human preference pairs. A small language model\n"
    "(the policy) starts from a supervised reference model and is trained on pairs of completions for the same\n"
    "prompt, one preferred (chosen) over the other (rejected) by noisy human-like labels: about one label in five\n"
    "is wrong. Your loss is applied to each pair for one epoch.")
# What the fitness is, as the proposer is told it. ``judge`` (the default) plays the DiscoPOP paper's LLM judge: it
# rates the gold reward only as far as a completion reads as natural text of the world, so collapsing onto
# high-reward tokens does not pay; ``gold-reward`` is the raw sentiment score; ``kl-penalised`` charges per nat of KL.
FITNESS_TEXTS = {
    "judge": ("judge score", (
        "a judge's mean rating of completions sampled from the trained policy on held-out prompts (0 to 1; higher\n"
        "is better). The judge rates each completion's sentiment by a hidden gold reward model, but only as far as\n"
        "the completion reads as natural text: word sequences that real text would (almost) never contain cut its\n"
        "rating. The reference model's own completions read as natural. The gold reward, the naturalness and the\n"
        "KL from the reference are reported beside it")),
    "gold-reward": ("gold reward", (
        "the mean reward of completions sampled from the trained policy on held-out prompts, scored by a hidden\n"
        "gold reward model (0 to 1; higher is better). Moving far from the reference (high KL) is not penalised in\n"
        "the fitness, but it is reported")),
    "kl-penalised": ("KL-penalised reward", (
        "the mean reward of completions sampled from the trained policy on held-out prompts, scored by a hidden\n"
        "gold reward model (0 to 1), minus {kl_coefficient} per nat of KL divergence from the reference model\n"
        "(higher is better)")),
}


class PreferenceSyntheticTask(PreferenceTask):
    name = "preference-synthetic"
    settings_type = PreferenceSettings
    texts = TaskTexts(kind="preference optimization loss", description=DESCRIPTION,
                      fitness=FITNESS_TEXTS["judge"][1], fitness_name=FITNESS_TEXTS["judge"][0], expertise=EXPERTISE)
    metric_columns = (MetricColumn("gold_reward", "gold reward", 4, better="higher"),
                      MetricColumn("naturalness", "naturalness", 3, better="higher"),
                      MetricColumn("kl", "KL", 3, better="lower"))
    # The judge and the gold reward rise as the policy moves from the reference, and dpo itself trades one for the
    # other through beta and training length: a candidate is judged against dpo's frontier at its own KL. The grid
    # (beta from a quarter to four times the setting's, half and full budget) spans dpo's KL at every held-out beta.
    # MAP-Elites axes: KL spent (the catalog spans about 2.8 to 3.7 nats; collapses go far past) and naturalness
    # (the catalog keeps 0.88-0.89; a loss that trades it away for reward drops below)
    descriptors = (Descriptor("kl", "KL to the reference", (1.0, 2.0, 3.0, 3.5, 4.0, 6.0)),
                   Descriptor("naturalness", "naturalness", (0.6, 0.8, 0.87, 0.88, 0.89)))
    trade_off = TradeOff(cost="kl", cost_label="KL to the reference", gains=("fitness", "gold_reward"),
                         knobs=(Knob("beta", (0.25, 0.5, 1.0, 2.0, 4.0), relative=True),
                                Knob("budget", (0.5, 1.0))))
    # The probe has collapsed once it has lost half of what dpo gains by the same point (measured: discopop at beta
    # 0.01 loses about as much as dpo gains; losses that stay put lose nothing), and at least the quick score's
    # sampling noise; without dpo's probe (llm2 evaluate, heldout), 0.15 below the untrained start.
    collapse_share = 0.5
    collapse_floor = 0.02
    collapse_margin = 0.15
    # --rungs: a quarter of training on one seed first (its rank correlation with the full evaluation: BENCHMARKS.md)
    fidelity_rungs = ((0.25, 1),)

    def __init__(self, world_config: WorldConfig | None = None, train_config: TrainConfig | None = None):
        self.world_config = world_config or WorldConfig()
        self.train_config = train_config or TrainConfig()
        self._scorers: dict[tuple, "PreferenceScorer"] = {}

    # -- trusted main process ----------------------------------------------------------------------------------
    def prepare(self, settings: PreferenceSettings) -> None:
        prepare_training(self.world_config, settings.world_seed, settings.label_noise)

    # -- training side -----------------------------------------------------------------------------------------
    def training_data(self, settings: PreferenceSettings) -> TrainingWorld:
        return load_training(self.world_config, settings.world_seed, settings.label_noise)

    def output_spec(self, data: TrainingWorld) -> dict[str, TensorSpec]:
        return spec_of(data.reference_weights)

    def train(self, fn: Callable[..., Any], data: TrainingWorld, setting: EvalSetting,
              checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
        return train_policy(fn, data, setting, self.train_config, self.probe_fraction, checkpoint)

    # -- scoring side ------------------------------------------------------------------------------------------
    def scorer(self, settings: PreferenceSettings) -> "PreferenceScorer":
        key = (world_secret.fingerprint(), settings.world_seed, settings.fitness)  # another secret, another world
        if key not in self._scorers:
            self._scorers[key] = PreferenceScorer(load_world(self.world_config, settings.world_seed),
                                                  self.train_config, settings)
        return self._scorers[key]

    # -- texts and the held-out suite --------------------------------------------------------------------------
    def texts_for(self, settings: PreferenceSettings) -> TaskTexts:
        name, text = FITNESS_TEXTS[settings.fitness]
        return replace(self.texts, fitness=text.format(kl_coefficient=self.train_config.kl_coefficient),
                       fitness_name=name)

    def setting_text(self, settings: PreferenceSettings) -> str:
        return f"β = {settings.beta:g}, world {settings.world_seed}, label noise {settings.label_noise:g}"

    def heldout_settings(self, settings: PreferenceSettings) -> list[PreferenceSettings]:
        """Settings that differ from ``settings`` in one knob each: β, then world seed, then label noise."""
        return ([replace(settings, beta=b) for b in HELDOUT_BETAS if b != settings.beta]
                + [replace(settings, world_seed=s) for s in HELDOUT_WORLD_SEEDS if s != settings.world_seed]
                + [replace(settings, label_noise=n) for n in HELDOUT_LABEL_NOISE if n != settings.label_noise])


class PreferenceScorer:
    """Samples the trained policy on the world's held-out prompts and judges the samples (trusted: holds the hidden
    process, the gold reward and the held-out prompts)."""

    def __init__(self, world: World, config: TrainConfig, settings: PreferenceSettings):
        self.world, self.config, self.settings = world, config, settings
        self.tolerance = judge_tolerance(world, config)
        self._reference: Metrics | None = None

    def score(self, output: TrainOutput, quick: bool = False) -> Metrics:
        metrics = self._metrics(score_weights(self.world, output.weights, self.config, self.tolerance, quick))
        if output.loss_trace:
            metrics.values["loss_final"] = output.loss_trace[-1]
        return metrics

    def reference_metrics(self) -> Metrics:
        if self._reference is None:
            self._reference = self._metrics(score_weights(self.world, self.world.reference_weights, self.config,
                                                          self.tolerance))
        return self._reference

    def _metrics(self, scores: PolicyScores) -> Metrics:
        fitness = {"judge": scores.judge, "gold-reward": scores.gold_reward,
                   "kl-penalised": scores.gold_reward - self.config.kl_coefficient * scores.kl}[self.settings.fitness]
        return Metrics(fitness=fitness, values={"gold_reward": scores.gold_reward, "naturalness": scores.naturalness,
                                                "judge": scores.judge, "kl": scores.kl,
                                                "reward_std": scores.reward_std})

