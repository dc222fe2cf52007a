"""``preference-synthetic``: the synthetic preference world as an llm2 task (the default inner loop)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Mapping

from llm2.task_api import world_secret
from llm2.task_api.base import (Descriptor, EvalSetting, Knob, MetricColumn, Metrics, TaskTexts, TensorSpec,
                             TradeOff, TrainOutput)
from llm2.tasks.defaults import spec_of
from llm2.tasks.preference.common import EXPERTISE, PreferenceTask
from llm2.tasks.preference_synthetic.config import PreferenceSettings, TrainConfig, WorldConfig
from llm2.tasks.preference_synthetic.peak import PeakTraining, peak_spec, score_peak, train_peak, unpack
from llm2.tasks.preference_synthetic.reference_frontier import ReferenceFrontier, load_frontier
from llm2.tasks.preference_synthetic.score import PolicyScores, judge_tolerance, score_weights
from llm2.tasks.preference_synthetic.train import train_policy
from llm2.tasks.preference_synthetic.world import (TrainingWorld, World, load_training, load_world,
                                                   prepare_training)

HELDOUT_BETAS = (0.01, 0.025, 0.1, 0.5)
HELDOUT_WORLD_SEEDS = (1, 2)
HELDOUT_LABEL_NOISE = (0.1, 0.3)
SEARCH_FITNESSES = ("frontier-gap", "judge-peak")

DESCRIPTION = (
    "The task: offline preference optimization, as in RLHF from human preference pairs. A small language model\n"
    "(the policy) starts from a supervised reference model and is trained on pairs of completions for the same\n"
    "prompt, one preferred (chosen) over the other (rejected) by noisy human-like labels: about one label in five\n"
    "is wrong. Your loss is applied to each pair for one epoch.")
# What the fitness is, as the proposer is told it. ``judge`` plays the DiscoPOP paper's LLM judge: it rates the gold
# reward only as far as a completion reads as natural text of the world, so collapsing onto high-reward tokens does
# not pay; ``frontier-gap`` (the default: it agrees best with the held-out verdict, docs/fitness.md) is the judge
# minus dpo's frontier at the same KL; ``gold-reward`` is the raw sentiment score; ``kl-penalised`` charges per nat.
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
    "frontier-gap": ("judge gap to dpo's frontier", (
        "a judge's mean rating of completions sampled from the trained policy on held-out prompts (0 to 1), minus\n"
        "the best rating dpo reaches at the same KL divergence from the reference when trained for any length\n"
        "(up to three times as long) at any of several β (higher is better; 0 is on dpo's frontier). Moving away\n"
        "from the reference faster earns nothing by itself: only a better rating at the same KL does. The judge\n"
        "rates sentiment only as far as a completion reads as natural text; the KL is reported beside it")),
    "judge-peak": ("peak judge score", (
        "the best judge rating along a run three times as long: the policy's weights at six points of that run\n"
        "are rated on some held-out prompts, and the best of them is reported on other held-out prompts (0 to 1;\n"
        "higher is better). How fast the loss leaves the reference does not matter, only how good the policy\n"
        "gets. The judge rates sentiment only as far as a completion reads as natural text")),
}


class PreferenceSyntheticTask(PreferenceTask):
    name = "preference-synthetic"
    settings_type = PreferenceSettings
    texts = TaskTexts(kind="preference optimization loss", description=DESCRIPTION,
                      fitness=FITNESS_TEXTS["frontier-gap"][1], fitness_name=FITNESS_TEXTS["frontier-gap"][0], expertise=EXPERTISE)
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
                                Knob("budget", (0.5, 1.0, 2.0))))  # to KL ~13: where discoveries go
    # The probe has collapsed once it has lost half of what dpo gains by the same point (measured: discopop at beta
    # 0.01 loses about as much as dpo gains; losses that stay put lose nothing), and at least the quick score's
    # sampling noise; without dpo's probe (llm2 evaluate, heldout), 0.15 below the untrained start.
    collapse_share = 0.5
    collapse_floor = 0.02
    collapse_margin = 0.15
    # --rungs (opt-in): three quarters of training on one seed first. On the default fitness (frontier-gap) its
    # Spearman correlation with the full evaluation (bench/rung_choice.py, BENCHMARKS.md) is 0.83 over the 19 catalog
    # losses, 0.79 over a recorded run's 38 proposals, 0.84 pooled, at 0.39 of the cost; half of training ranks the
    # catalog (0.88) but not the proposals (0.13: at half, discovered losses sit within the noise of dpo's frontier)
    fidelity_rungs = ((0.75, 1),)

    def can_pause(self, settings: PreferenceSettings) -> bool:
        """A run at a share of the budget is the first part of the whole run (a constant learning rate, the same
        batches); judge-peak's run goes past the budget and hands back several checkpoints, so it cannot pause."""
        return settings.fitness != "judge-peak"

    def __init__(self, world_config: WorldConfig | None = None, train_config: TrainConfig | None = None):
        self.world_config = world_config or WorldConfig()
        self.train_config = train_config or TrainConfig()
        self._scorers: dict[tuple, "PreferenceScorer"] = {}

    # -- trusted main process ----------------------------------------------------------------------------------
    def prepare(self, settings: PreferenceSettings) -> None:
        prepare_training(self.world_config, settings.world_seed, settings.label_noise)
        if settings.fitness == "frontier-gap":  # trace dpo's frontier here, once, before any candidate is scored
            self.scorer(settings).frontier()

    # -- training side -----------------------------------------------------------------------------------------
    def training_data(self, settings: PreferenceSettings) -> TrainingWorld | PeakTraining:
        world = load_training(self.world_config, settings.world_seed, settings.label_noise)
        if settings.fitness == "judge-peak":  # the run hands back its weights at every checkpoint
            return PeakTraining(world, len(self.train_config.peak_budgets))
        return world

    def output_spec(self, data: TrainingWorld | PeakTraining) -> dict[str, TensorSpec]:
        if isinstance(data, PeakTraining):
            return peak_spec(spec_of(data.world.reference_weights), data.checkpoints)
        return spec_of(data.reference_weights)

    def train(self, fn: Callable[..., Any], data: TrainingWorld | PeakTraining, setting: EvalSetting,
              checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
        if isinstance(data, PeakTraining):
            return train_peak(fn, data, setting, self.train_config, self.probe_fraction, checkpoint)
        return train_policy(fn, data, setting, self.train_config, self.probe_fraction, checkpoint)

    # -- scoring side ------------------------------------------------------------------------------------------
    def scorer(self, settings: PreferenceSettings) -> "PreferenceScorer":
        key = (world_secret.fingerprint(), settings.world_seed, settings.fitness)  # another secret, another world
        if settings.fitness == "frontier-gap":  # dpo's frontier is the setting's own
            key += (settings.beta, settings.label_noise)
        if key not in self._scorers:
            self._scorers[key] = PreferenceScorer(load_world(self.world_config, settings.world_seed),
                                                  self.train_config, settings)
        return self._scorers[key]

    # -- texts and the held-out suite --------------------------------------------------------------------------
    def texts_for(self, settings: PreferenceSettings) -> TaskTexts:
        name, text = FITNESS_TEXTS[settings.fitness]
        return replace(self.texts, fitness=text.format(kl_coefficient=self.train_config.kl_coefficient),
                       fitness_name=name)

    def collapse_reason(self, probe: Metrics, reference: Metrics, baseline_probe: float | None) -> str | None:
        if "frontier_judge" in probe.values:  # a gap to dpo's frontier: dpo's own probe sits at about 0 by
            baseline_probe = None  # construction, so only the margin rule (0.15 below the frontier) applies
        return super().collapse_reason(probe, reference, baseline_probe)

    def metrics_text(self, values: Mapping[str, float]) -> str:
        placement = self.placement_text(values)
        return super().metrics_text(values) + (f"; {placement}" if placement else "")

    def fitness_noise(self, values: Mapping[str, float]) -> float:
        noise = values.get("frontier_noise")
        return float(noise) if isinstance(noise, (int, float)) and math.isfinite(noise) else 0.0

    def placement_text(self, values: Mapping[str, float]) -> str:
        """'judge 0.790 @ KL 5.35: 0.011 below dpo's frontier at that KL (0.801 ± 0.004)', for frontier-gap."""
        judge, kl, frontier = (values.get(k) for k in ("judge", "kl", "frontier_judge"))
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (judge, kl, frontier)):
            return ""
        gap, noise = judge - frontier, self.fitness_noise(values)
        where = (f"within the noise of dpo's frontier at that KL" if abs(gap) <= noise
                 else f"{abs(gap):.3f} {'above' if gap > 0 else 'below'} dpo's frontier at that KL")
        return f"judge {judge:.3f} @ KL {kl:.2f}: {where} ({frontier:.3f} ± {noise:.3f})"

    def setting_text(self, settings: PreferenceSettings) -> str:
        return f"β = {settings.beta:g}, world {settings.world_seed}, label noise {settings.label_noise:g}"

    def heldout_settings(self, settings: PreferenceSettings) -> list[PreferenceSettings]:
        """Settings that differ from ``settings`` in one knob each: β, then world seed, then label noise.

        The search fitnesses (frontier-gap, judge-peak) are devices for the search; off its setting a candidate is
        judged on the judge itself, placed against the frontier the held-out check traces (docs/fitness.md)."""
        if settings.fitness in SEARCH_FITNESSES:
            settings = replace(settings, fitness="judge")
        return ([replace(settings, beta=b) for b in HELDOUT_BETAS if b != settings.beta]
                + [replace(settings, world_seed=s) for s in HELDOUT_WORLD_SEEDS if s != settings.world_seed]
                + [replace(settings, label_noise=n) for n in HELDOUT_LABEL_NOISE if n != settings.label_noise])


class PreferenceScorer:
    """Samples the trained policy on the world's held-out prompts and judges the samples (trusted: holds the hidden
    process, the gold reward and the held-out prompts; for ``frontier-gap``, dpo's frontier, traced here)."""

    def __init__(self, world: World, config: TrainConfig, settings: PreferenceSettings):
        self.world, self.config, self.settings = world, config, settings
        self.tolerance = judge_tolerance(world, config)
        self._reference: Metrics | None = None
        self._frontier: ReferenceFrontier | None = None

    def frontier(self) -> ReferenceFrontier:
        """dpo's frontier at this setting: from the cache, else traced (minutes, once per setting)."""
        if self._frontier is None:
            self._frontier = load_frontier(self.world, self.settings, self.config, self.tolerance)
        return self._frontier

    def score(self, output: TrainOutput, quick: bool = False) -> Metrics:
        if self.settings.fitness == "judge-peak":
            metrics = self._peak(output.weights, quick)
        else:
            metrics = self._metrics(score_weights(self.world, output.weights, self.config, self.tolerance, quick),
                                    quick)
        if output.loss_trace:
            metrics.values["loss_final"] = output.loss_trace[-1]
        return metrics

    def reference_metrics(self) -> Metrics:
        if self._reference is None:
            # judge-peak reports on the evaluation prompts only, so its start is scored there too
            prompts = (self.world.heldout_prompts[self.config.selection_prompts:]
                       if self.settings.fitness == "judge-peak" else None)
            self._reference = self._metrics(score_weights(self.world, self.world.reference_weights, self.config,
                                                          self.tolerance, prompts=prompts))
        return self._reference

    def _peak(self, weights: dict, quick: bool) -> Metrics:
        checkpoints = unpack(weights, len(self.config.peak_budgets))
        if quick:  # the cascade's probe: the weights so far
            return self._metrics(score_weights(self.world, checkpoints[-1], self.config, self.tolerance, quick=True))
        peak = score_peak(self.world, checkpoints, self.config, self.tolerance)
        metrics = self._metrics(peak.scores)
        metrics.values.update(peak_share=self.config.peak_budgets[peak.chosen], selection_judge=peak.selection_judge)
        return metrics

    def _metrics(self, scores: PolicyScores, quick: bool = False) -> Metrics:
        values = {"gold_reward": scores.gold_reward, "naturalness": scores.naturalness, "judge": scores.judge,
                  "kl": scores.kl, "reward_std": scores.reward_std}
        fitness = {"gold-reward": scores.gold_reward,
                   "kl-penalised": scores.gold_reward - self.config.kl_coefficient * scores.kl,
                   }.get(self.settings.fitness, scores.judge)
        if self.settings.fitness == "frontier-gap":
            gap = self.frontier().gap(scores.kl, scores.judge, quick)
            fitness = gap.gap
            values.update(frontier_judge=gap.frontier, frontier_noise=gap.noise)
        return Metrics(fitness=fitness, values=values)
