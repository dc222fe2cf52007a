"""Scoring a trained policy (trusted supervisor; never runs candidate code): the true goal, on dynamics and episode
starts the candidate never trained on or saw. A reward that pays for anything else is scored by what its policy
really achieves here.

Fitness: the share of scoring episodes in which the policy's mean action reaches the environment's goal. Beside
it: the mean steps to the goal (the time limit for a failure; the pendulum's is the step from which it stayed
upright), the success on gymnasium's own dynamics, where the
failures ended up, and what training reported (each reward term's mean, success while training), re-checked.
"""

from __future__ import annotations

import math

import torch

from llm2.task_api.base import CandidateError, Metrics, TrainOutput
from llm2.tasks.reward_design.contract import MAX_TERMS, TERM_NAME
from llm2.task_api import world_secret
from llm2.tasks.reward_design.envs import ENVS, MOUNTAIN_CAR, BatchEnv, EnvSpec, angle_normalize, dynamics_ranges
from llm2.tasks.reward_design.policy import Actor, actor_state, load_actor
from llm2.tasks.reward_design.ppo import PHASES
from llm2.tasks.reward_design.settings import RewardDesignSettings
from llm2.task_api.threads import single_thread


def scoring_seed(settings: RewardDesignSettings, dynamics: str) -> int:
    """The scoring episodes' seed: from the world secret, the eval seed and the dynamics (trusted side only), so a
    candidate can neither rebuild the scored starts and dynamics from public code nor meet them in training."""
    return world_secret.derive_seed("reward-design", settings.env, dynamics, settings.eval_seed)  # 63 bits already


def rollout(spec: EnvSpec, actor: Actor, episodes: int, seed: int, dynamics: str) -> dict[str, float]:
    """One episode per environment, all at once, with the policy's mean action."""
    env = BatchEnv(spec, episodes, torch.Generator().manual_seed(seed), dynamics_ranges(spec, dynamics))
    done = torch.zeros(episodes, dtype=torch.bool)
    success = torch.zeros(episodes, dtype=torch.bool)
    length = torch.full((episodes,), float(spec.horizon))
    progress = torch.full((episodes,), -math.inf)  # mountain car: highest position; pendulum: final |angle|
    with torch.no_grad():
        for _ in range(spec.horizon):
            obs, terminated, truncated = env.step(actor.act(env.observe()))
            alive = ~done
            if spec is MOUNTAIN_CAR:
                progress = torch.where(alive, torch.maximum(progress, obs[:, 0]), progress)
            ended = (terminated | truncated) & alive
            success |= env.succeeded(terminated, ended) & ended
            length = torch.where(ended & terminated, env.t.float(), length)
            done |= ended
            if bool(done.all()):
                break
    if spec is not MOUNTAIN_CAR:
        progress = angle_normalize(env.state[:, 0]).abs().float()
        # the pendulum's time to the goal: the step from which it stayed upright to the end
        length = torch.where(success, (env.t - env.upright_run).float(), length)
    failed = ~success
    return {"success_rate": float(success.float().mean()),
            "steps_to_goal": float(length.mean()),
            ("fail_highest_position" if spec is MOUNTAIN_CAR else "fail_final_angle"):
                float(progress[failed].mean()) if bool(failed.any()) else math.nan,
            "fail_share": float(failed.float().mean())}


def reflection_values(weights: dict[str, torch.Tensor]) -> dict[str, float]:
    """Training's own report (from the child, so only feedback, never fitness), its names re-checked."""
    names = weights.get("stats.term_names")
    means = weights.get("stats.term_means")
    episodes, successes = weights.get("stats.episodes"), weights.get("stats.successes")
    values: dict[str, float] = {}
    if episodes is not None and successes is not None and episodes.shape == successes.shape == (PHASES,):
        for phase in range(PHASES):
            if episodes[phase] > 0:  # a tenth in which no episode ended says nothing
                values[f"train_success_{phase}"] = float((successes[phase] / episodes[phase]).clamp(0, 1))
        late = episodes[-3:].sum()
        if late > 0:
            values["train_success"] = float((successes[-3:].sum() / late).clamp(0, 1))
    if names is None or means is None or means.shape != (MAX_TERMS, PHASES):
        return values
    for index in range(MAX_TERMS):
        raw = bytes(b for b in names[index].tolist() if b)
        if not raw:
            continue
        text = raw.decode("ascii", errors="replace")
        name = text if TERM_NAME.fullmatch(text) else f"term{index}"
        values[f"term.{name}"] = float(means[index].mean())
        values[f"term_first.{name}"] = float(means[index, 0])
        values[f"term_last.{name}"] = float(means[index, -1])
    return values


class RewardDesignScorer:
    def __init__(self, settings: RewardDesignSettings):
        self.settings = settings
        self.spec = ENVS[settings.env]
        self._reference: Metrics | None = None

    def score(self, output: TrainOutput, quick: bool = False) -> Metrics:
        try:
            actor = load_actor(self.spec, output.weights)
        except ValueError as exc:
            raise CandidateError(f"the trained policy cannot be used: {exc}", stage="score") from None
        if not all(bool(torch.isfinite(t).all()) for t in output.weights.values() if t.is_floating_point()):
            raise CandidateError("the trained policy is not finite", stage="score")
        metrics = self._measure(actor, quick)
        metrics.values.update(reflection_values(output.weights))
        return metrics

    def reference_metrics(self) -> Metrics:
        """The untrained policy (the initial weights of seed 0)."""
        if self._reference is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                actor = load_actor(self.spec, actor_state(Actor(self.spec)))
            self._reference = self._measure(actor, False)
        return self._reference

    def _measure(self, actor: Actor, quick: bool) -> Metrics:
        settings = self.settings
        episodes = max(4, settings.episodes // 4) if quick else settings.episodes
        with single_thread():
            main = rollout(self.spec, actor, episodes, scoring_seed(settings, settings.dynamics), settings.dynamics)
            values = dict(main)
            if not quick and settings.dynamics != "nominal":
                nominal = rollout(self.spec, actor, episodes, scoring_seed(settings, "nominal"), "nominal")
                values["nominal_success"] = nominal["success_rate"]
        return Metrics(fitness=main["success_rate"], values=values)
