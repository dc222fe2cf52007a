"""``reward-design``: Eureka (Ma et al. 2023) in CPU-seconds. A candidate is a reward function for one of
gymnasium's classic-control environments, returning its terms by name, optionally with domain-randomisation ranges
(DrEureka, 2024); the child trains a policy with PPO on a batch of environments under it; the trusted scorer runs
the policy on held-out dynamics and scores the true goal, so a reward that pays for anything else earns nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from llm2.task_api.base import EvalSetting, MetricColumn, TaskTexts, TensorSpec, TrainOutput
from llm2.tasks.defaults import TaskBase
from llm2.tasks.reward_design.contract import CONTRACT, RANDOMIZATION_NAME, check_reward_contract
from llm2.tasks.reward_design.envs import ENVS, MOUNTAIN_CAR
from llm2.tasks.reward_design.feedback import reflection_text
from llm2.tasks.reward_design.ppo import PPO_CONFIGS
from llm2.tasks.reward_design.rewards import BASELINES
from llm2.tasks.reward_design.score import RewardDesignScorer
from llm2.tasks.reward_design.settings import RewardDesignSettings
from llm2.tasks.reward_design.train import TrainingData, output_spec, train_policy

HELDOUT_EVAL_SEEDS = (1, 2, 3, 4)  # with the two other dynamics: six settings, the fewest a sign-flip can call


def _parameters_text(env: str) -> str:
    return "\n".join(f"  {p.name}: nominal {p.nominal:g}, bounds [{p.bounds[0]:g}, {p.bounds[1]:g}] ({p.meaning})"
                     for p in ENVS[env].parameters)


def _env_text(env: str) -> str:
    if env == "mountain_car":
        return ("MountainCarContinuous-v0: a car in a valley, obs = [position in [-1.2, 0.6], velocity in\n"
                "[-0.07, 0.07]], action = [force in [-1, 1]]; the engine is too weak to climb the right hill\n"
                "directly, so the car must swing back and forth to build up energy; the episode terminates at the\n"
                "flag (position >= 0.45) and is cut at 999 steps. Starts at rest at a position in [-0.6, -0.4].")
    return ("Pendulum-v1: a pendulum on a motor, obs = [cos(theta), sin(theta), angular velocity in [-8, 8]]\n"
            "(theta = 0 upright), action = [torque in [-2, 2]]; the motor is too weak to lift it directly, so it\n"
            "must swing up; episodes never terminate and are cut at 200 steps. Starts at a random angle.")


def _description(env: str) -> str:
    discount = PPO_CONFIGS[env].gamma
    return (
        "The task: writing the reward function a reinforcement-learning agent is trained on (as in Eureka).\n"
        "A fresh policy (an MLP giving a Gaussian over actions) is trained with PPO for a fixed number of\n"
        "environment steps on many copies of the environment at once, on the sum of your reward's terms\n"
        "(rewards are divided by a running estimate of the return's spread, so their overall scale does not\n"
        f"matter, their proportions do; discount {discount:g}). Then the policy acts with its mean action on new\n"
        "episodes whose physical parameters differ from the training ones.\n"
        f"{_env_text(env)}\n"
        "Physical parameters you may randomise during training (each training episode draws its own values\n"
        f"uniformly from your ranges; unnamed ones stay nominal), in the constant {RANDOMIZATION_NAME}:\n"
        f"{_parameters_text(env)}")


class RewardDesignTask(TaskBase):
    name = "reward-design"
    settings_type = RewardDesignSettings
    contract = CONTRACT
    texts = TaskTexts(
        kind="reward function",
        description=_description("mountain_car"),
        fitness=("the share of scoring episodes in which the trained policy achieves the environment's true goal\n"
                 "(mountain_car: reach the flag within 999 steps; pendulum: within 0.3 rad of upright for each\n"
                 "of the last 50 of its 200 steps), 0 to 1, higher is better, on physical parameters away from\n"
                 "the nominal ones and episode starts never used in training; your reward's own value counts\n"
                 "for nothing"),
        fitness_name="held-out success",
        expertise=("You are deeply familiar with reward design and reward shaping for reinforcement learning\n"
                   "(potential-based shaping, curricula, domain randomisation). Be creative and reference prior\n"
                   "literature when possible."),
        rules=("- Return a dict {term name: float tensor [batch]}; no in-place changes to the arguments.\n"
               "- Only the sum of the terms is trained on; the scorer never sees your reward.\n"
               "- Use only the arguments: there is no hidden state, and the function is called once per\n"
               "  step for all environments together.\n"),
    )
    baselines = BASELINES
    reference_baseline = "environment"
    discovery_baselines = tuple(BASELINES)
    metric_columns = (
        MetricColumn("steps_to_goal", "steps to goal", 0, better="lower"),
        MetricColumn("nominal_success", "success, nominal dynamics", 3, better="higher"),
        MetricColumn("train_success", "success, last 3 tenths of training", 3),
    )
    offline_proposer = "reward-design-offline"
    offline_proposers = {"reward-design-offline": "llm2.tasks.reward_design.proposer:RewardDesignOfflineProposer"}
    prompt_dir = str(Path(__file__).parent / "prompts")
    collapse_share = None  # success is 0 for long stretches before it rises: a probe at 0 has not collapsed

    def __init__(self) -> None:
        self._scorers: dict[RewardDesignSettings, RewardDesignScorer] = {}

    def texts_for(self, settings: RewardDesignSettings) -> TaskTexts:
        """The description of the settings' environment only."""
        return replace(self.texts, description=_description(settings.env))

    # -- trusted main process ----------------------------------------------------------------------------------
    def prepare(self, settings: RewardDesignSettings) -> None:
        """Nothing to build: the environments are code, and the scoring dynamics are drawn by the scorer."""

    # -- training side -----------------------------------------------------------------------------------------
    def training_data(self, settings: RewardDesignSettings) -> TrainingData:
        return TrainingData(settings.env)

    def output_spec(self, data: TrainingData) -> dict[str, TensorSpec]:
        return output_spec(data.spec)

    def check_contract(self, fn: Callable[..., Any], data: TrainingData | None = None) -> None:
        check_reward_contract(fn, data.spec if data is not None else MOUNTAIN_CAR)

    def train(self, fn: Callable[..., Any], data: TrainingData, setting: EvalSetting,
              checkpoint: Callable[[TrainOutput], bool] | None = None) -> TrainOutput:
        return train_policy(fn, data, setting, self.probe_fraction, checkpoint)

    # -- scoring side ------------------------------------------------------------------------------------------
    def scorer(self, settings: RewardDesignSettings) -> RewardDesignScorer:
        key = replace(settings, steps=None, envs=64)  # scoring does not depend on the training budget
        if key not in self._scorers:
            self._scorers[key] = RewardDesignScorer(key)
        return self._scorers[key]

    # -- texts, held-out suite, figures, export ----------------------------------------------------------------
    def setting_text(self, settings: RewardDesignSettings) -> str:
        # the discovery's own eval seed stays out (the proposer never learns which episodes score it); another one
        # is named, so that the held-out suite's rows can be told apart
        other = f" (scoring set {settings.eval_seed})" if settings.eval_seed else ""
        return (f"{ENVS[settings.env].gym_id}, {settings.total_steps:,} PPO steps on {settings.envs} environments, "
                f"scored on {settings.dynamics} dynamics over {settings.episodes} episodes{other}")

    def metrics_text(self, values: Mapping[str, float]) -> str:
        return reflection_text(values)

    def heldout_settings(self, settings: RewardDesignSettings) -> list[RewardDesignSettings]:
        """Each differs in one knob: other scoring episodes, then other dynamics."""
        found = [replace(settings, eval_seed=s) for s in HELDOUT_EVAL_SEEDS if s != settings.eval_seed]
        found += [replace(settings, dynamics=d) for d in ("far", "nominal") if d != settings.dynamics]
        return found

    def figures(self, context: Any) -> list[Any]:
        from llm2.tasks.reward_design.figures import reward_design_figures

        return reward_design_figures(self, context)

    def export_module(self, entries: Sequence[Any], run: Any, file_name: str) -> str:
        from llm2.tasks.reward_design.export import reward_module_text

        return reward_module_text(entries, run, self, file_name)

    def export_usage(self, example: str, file_name: str) -> str:
        from llm2.tasks.reward_design.export import reward_usage

        return reward_usage(example, file_name)

