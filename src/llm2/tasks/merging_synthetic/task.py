"""``merging-synthetic``: the model-merging task of the Self-Developing paper (Ishibashi et al. 2025: an LLM writes
merging algorithms; each merges a seed model with expert fine-tunes of it; the merged model is scored on the
experts' skills) as a CPU miniature: a 110k-parameter transformer, eight symbol-sequence skills, seconds per
candidate. No training happens inside a candidate: its function is applied to every parameter and the merged
model is scored directly."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from llm2.task_api import world_secret
from llm2.task_api.base import EvalSetting, MetricColumn, TaskTexts, TensorSpec, TrainOutput
from llm2.tasks.defaults import spec_of
from llm2.tasks.merging.baselines import BASELINES
from llm2.tasks.merging.contract import checked_merge
from llm2.tasks.merging.task_base import MergingTask
from llm2.tasks.merging_synthetic import world
from llm2.tasks.merging_synthetic.score import MergedModelScorer
from llm2.tasks.merging_synthetic.skills import MAX_LENGTH, MIN_LENGTH, SKILL_NAMES, SKILLS
from llm2.task_api.threads import single_thread

DEFAULT_EXPERTS = ("copy", "reverse", "sort")


@dataclass(frozen=True)
class MergingSyntheticSettings:
    experts: tuple[str, ...] = field(default=DEFAULT_EXPERTS, metadata={
        "help": f"the skills whose experts are merged, comma-separated, from: {', '.join(SKILL_NAMES)}"})
    world_seed: int = field(default=0, metadata={
        "help": "seed of the world: the seed model's initialisation and pre-training data, the held-out problems"})
    expert_seed: int = field(default=0, metadata={
        "help": "seed of the experts' fine-tuning data (another value gives other experts of the same skills)"})
    world: str = field(default="default", metadata={
        "help": "default, or small: a world built in seconds (narrower model, shorter training) for smoke tests "
                "and demos, where merges do not show the default world's findings"})

    def __post_init__(self) -> None:
        if not self.experts:
            raise ValueError("experts: name at least one skill")
        unknown = [s for s in self.experts if s not in SKILLS]
        if unknown:
            raise ValueError(f"experts: unknown skill(s) {', '.join(map(repr, unknown))}; "
                             f"the skills are {', '.join(SKILL_NAMES)}")
        if len(set(self.experts)) != len(self.experts):
            raise ValueError(f"experts: a skill is named twice in {', '.join(self.experts)}")
        if self.world not in world.RECIPES:
            raise ValueError(f"world must be one of {', '.join(world.RECIPES)}, not {self.world!r}")
        for name in ("world_seed", "expert_seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}")


def _skill_lines() -> str:
    return "\n".join(f"  {s.name}: {s.describe}" for s in SKILLS.values())


class MergingSyntheticTask(MergingTask):
    name = "merging-synthetic"
    settings_type = MergingSyntheticSettings
    texts = TaskTexts(
        kind="model-merging algorithm",
        description=(
            "The task: merging expert models into one. A seed language model (a small transformer with Llama-style\n"
            "parameter names and 2 layers) was pre-trained briefly on a mixture of symbol-sequence skills, all\n"
            "in one prompt format: a skill token, an input of "
            f"{MIN_LENGTH} to {MAX_LENGTH} symbols, a separator, the answer. Every skill\n"
            "writes its symbols with its own alphabet. The skills:\n"
            f"{_skill_lines()}\n"
            "Each expert is a copy of the seed fine-tuned briefly, with a small learning rate, on one skill only: it\n"
            "masters its skill and forgets a little of the others. Your function merges the seed and the experts,\n"
            "parameter by parameter, into one model that should have every expert's skill. Nothing is trained: the\n"
            "merged weights are scored as they are. The experts' task vectors (expert - base) are small, a few\n"
            "percent of the weights, and nearly orthogonal, but they still interfere: summing them unscaled loses\n"
            "much of the gain. The embedding and output rows of a skill's alphabet are changed mostly by its own\n"
            "expert."),
        fitness=("the merged model's exact-match accuracy on held-out problems of each merged expert's skill (its\n"
                 "greedy answer must equal the reference answer, every symbol), averaged over those skills; 0 to 1,\n"
                 "higher is better"),
        fitness_name="exact match",
        expertise=("You are deeply familiar with model merging (task arithmetic, TIES, DARE, model soups, SLERP,\n"
                   "Fisher and RegMean merging) and the weight-space geometry of fine-tuned models. Be creative and\n"
                   "reference prior literature when possible."),
        rules=("- base and every expert are float32 tensors on the CPU; return one tensor of base's shape.\n"
               "- Use only the weights: there is no data, no gradient, no training.\n"
               "- Keep it cheap: a few vectorised passes over each tensor (real models have tensors of 50 million\n"
               "  entries); no Python loops over elements."),
    )
    discovery_baselines = tuple(BASELINES)
    metric_columns = (
        MetricColumn("worst", "worst skill", 3, better="higher"),
        MetricColumn("others", "unmerged skills", 3, better="higher"),
    )

    def __init__(self) -> None:
        self._inputs: dict[MergingSyntheticSettings, world.MergeInputs] = {}
        self._scorers: dict[tuple[str, MergingSyntheticSettings], MergedModelScorer] = {}

    # -- trusted main process ----------------------------------------------------------------------------------
    def prepare(self, settings: MergingSyntheticSettings) -> None:
        world.prepare_world(settings.world_seed, settings.experts, settings.expert_seed, settings.world)

    # -- training side -----------------------------------------------------------------------------------------
    def training_data(self, settings: MergingSyntheticSettings) -> world.MergeInputs:
        if settings not in self._inputs:
            self._inputs[settings] = world.load_inputs(settings.world_seed, settings.experts, settings.expert_seed,
                                                       settings.world)
        return self._inputs[settings]

    def output_spec(self, data: world.MergeInputs) -> dict[str, TensorSpec]:
        return spec_of(data.base)

    def check_contract(self, fn: Callable[..., Any], data: world.MergeInputs | None = None) -> None:
        with single_thread():
            super().check_contract(fn, data)

    def train(self, fn: Callable[..., Any], data: world.MergeInputs, setting: EvalSetting,
              checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
        """Apply ``fn`` to every parameter. The budget does not apply (a merge is all or nothing) and there is no
        probe; the random generator is seeded with the setting's seed first, so random merges are reproducible."""
        return merge_models(fn, data, setting.seed)

    # -- scoring side ------------------------------------------------------------------------------------------
    def scorer(self, settings: MergingSyntheticSettings) -> MergedModelScorer:
        key = dataclasses.replace(settings, expert_seed=0)  # scoring does not depend on which experts were made
        secret = world_secret.fingerprint()  # another secret, other held-out problems
        if (secret, key) not in self._scorers:
            self._scorers[(secret, key)] = MergedModelScorer(settings.world_seed, settings.experts, settings.world)
        return self._scorers[(secret, key)]

    # -- texts, held-out suite, export -------------------------------------------------------------------------
    def setting_text(self, settings: MergingSyntheticSettings) -> str:
        small = ", small world" if settings.world != "default" else ""
        return (f"{len(settings.experts)} experts ({', '.join(settings.experts)}), fine-tuning seed "
                f"{settings.expert_seed}, world {settings.world_seed}{small}")

    def heldout_settings(self, settings: MergingSyntheticSettings) -> list[MergingSyntheticSettings]:
        """Each differs in one knob: experts of skills never merged during discovery (two sets), experts of the
        same skills from another fine-tuning seed, one expert fewer and one more, another world."""
        k = len(settings.experts)
        unseen = [s for s in SKILL_NAMES if s not in settings.experts]
        found: list[MergingSyntheticSettings] = []
        for group in (tuple(unseen[:k]), tuple(unseen[-k:])):
            if len(group) == k and all(group != s.experts for s in found):
                found.append(dataclasses.replace(settings, experts=group))
        found.append(dataclasses.replace(settings, expert_seed=settings.expert_seed + 1))
        if k > 1:
            found.append(dataclasses.replace(settings, experts=settings.experts[:-1]))
        if unseen:
            found.append(dataclasses.replace(settings, experts=settings.experts + (unseen[0],)))
        found.append(dataclasses.replace(settings, world_seed=settings.world_seed + 1))
        return found


def merge_models(fn: Callable[..., Any], data: world.MergeInputs, seed: int) -> TrainOutput:
    merged: dict[str, torch.Tensor] = {}
    with single_thread():
        torch.manual_seed(seed)
        for name, base in data.base.items():
            merged[name] = checked_merge(fn, name, base, [expert[name] for expert in data.experts], stage="train")
    return TrainOutput(merged, [], steps=len(merged))
