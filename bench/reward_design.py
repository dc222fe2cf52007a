"""The reward-design task's inner loop against Stable-Baselines3's PPO, on the same environment (gymnasium's
MountainCarContinuous-v0), the same reward (the task's ``shaped`` baseline), the same PPO settings and the same
step budget, in one run:

    python bench/reward_design.py [--steps 150000] [--seeds 2]    # needs the bench-rl extra (stable-baselines3)

For each: environment steps per second of training (evaluations excluded), and the training time until the
policy's mean action first reaches the success threshold (the shaped baseline's own success, 0.9 by default) on
100 episodes of gymnasium's dynamics, checked every 8,192 steps with the same evaluator for both. The last line is
the speed-up (SB3 time / llm2 time), per seed and in the mean.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from llm2.tasks.reward_design.envs import MOUNTAIN_CAR, BatchEnv
from llm2.tasks.reward_design.policy import Actor
from llm2.tasks.reward_design.ppo import PPO_CONFIGS, Reflection, train_ppo
from llm2.tasks.reward_design.rewards import FUNCTIONS

CHECK_EVERY = 8192
EPISODES = 100


def success(act, seed: int = 123) -> float:
    """The share of EPISODES nominal episodes that reach the flag, with ``act(obs [n, 2]) -> actions [n, 1]``."""
    env = BatchEnv(MOUNTAIN_CAR, EPISODES, torch.Generator().manual_seed(seed))
    done = torch.zeros(EPISODES, dtype=torch.bool)
    reached = torch.zeros(EPISODES, dtype=torch.bool)
    with torch.no_grad():
        for _ in range(MOUNTAIN_CAR.horizon):
            _, terminated, truncated = env.step(act(env.observe()))
            reached |= terminated & ~done
            done |= terminated | truncated
            if bool(done.all()):
                break
    return float(reached.float().mean())


class Clock:
    """Training time: wall time minus the time spent in evaluations."""

    def __init__(self, threshold: float):
        self.threshold, self.start, self.paused = threshold, time.perf_counter(), 0.0
        self.reached_at: float | None = None
        self.reached_steps: int | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def check(self, steps: int, act) -> None:
        if self.reached_at is not None:
            return
        before = time.perf_counter()
        rate = success(act)
        self.paused += time.perf_counter() - before
        if rate >= self.threshold:
            self.reached_at, self.reached_steps = self.elapsed(), steps


def run_llm2(steps: int, seed: int, threshold: float) -> dict:
    torch.set_num_threads(1)
    config = PPO_CONFIGS["mountain_car"]
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    actor = Actor(MOUNTAIN_CAR)
    env = BatchEnv(MOUNTAIN_CAR, config.envs, generator)
    clock = Clock(threshold)
    last = [0]

    def after_update(done: int) -> bool:
        if done - last[0] >= CHECK_EVERY:
            last[0] = done
            clock.check(done, actor.act)
        return True

    done = train_ppo(env, actor, FUNCTIONS["shaped"], steps, config, generator, Reflection.empty(), after_update)
    total = clock.elapsed()
    return {"steps": done, "seconds": total, "steps_per_s": done / total, "to_success_s": clock.reached_at,
            "to_success_steps": clock.reached_steps, "final_success": success(actor.act)}


def run_sb3(steps: int, seed: int, threshold: float) -> dict:
    import gymnasium
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from llm2.tasks.reward_design.wrapper import DiscoveredReward

    torch.set_num_threads(1)
    config = PPO_CONFIGS["mountain_car"]
    vec = make_vec_env(lambda: DiscoveredReward(gymnasium.make(MOUNTAIN_CAR.gym_id), FUNCTIONS["shaped"]),
                       n_envs=config.envs, seed=seed)
    vec = VecNormalize(vec, norm_obs=False, norm_reward=True, gamma=config.gamma)  # as llm2 scales rewards
    model = PPO("MlpPolicy", vec, n_steps=config.rollout, batch_size=config.envs * config.rollout // config.minibatches,
                n_epochs=config.epochs, learning_rate=config.lr, gamma=config.gamma, gae_lambda=config.lam,
                clip_range=config.clip, vf_coef=config.value_coef, ent_coef=config.entropy_coef,
                max_grad_norm=config.max_grad_norm, seed=seed, device="cpu",
                policy_kwargs={"net_arch": [64, 64], "activation_fn": torch.nn.Tanh,
                               "log_std_init": config.init_log_std})
    clock = Clock(threshold)

    def act(obs: torch.Tensor) -> torch.Tensor:
        actions, _ = model.predict(obs.numpy(), deterministic=True)
        return torch.as_tensor(np.clip(actions, -1, 1), dtype=torch.float32)

    class Check(BaseCallback):
        def __init__(self):
            super().__init__()
            self.last = 0

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            if self.num_timesteps - self.last >= CHECK_EVERY:
                self.last = self.num_timesteps
                clock.check(self.num_timesteps, act)

    clock.start = time.perf_counter()
    model.learn(total_timesteps=steps, callback=Check())
    total = clock.elapsed()
    return {"steps": model.num_timesteps, "seconds": total, "steps_per_s": model.num_timesteps / total,
            "to_success_s": clock.reached_at, "to_success_steps": clock.reached_steps, "final_success": success(act)}


def show(name: str, seed: int, result: dict) -> None:
    reached = (f"{result['to_success_s']:.1f} s ({result['to_success_steps']:,} steps)"
               if result["to_success_s"] is not None else "not reached")
    print(f"{name:5} seed {seed}: {result['steps']:,} steps in {result['seconds']:.1f} s = "
          f"{result['steps_per_s']:,.0f} steps/s; to success: {reached}; final success {result['final_success']:.2f}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.9)
    args = parser.parse_args()
    speedups, throughput = [], []
    for seed in range(args.seeds):
        ours = run_llm2(args.steps, seed, args.threshold)
        show("llm2", seed, ours)
        peer = run_sb3(args.steps, seed, args.threshold)
        show("sb3", seed, peer)
        throughput.append(ours["steps_per_s"] / peer["steps_per_s"])
        if ours["to_success_s"] is not None:
            # SB3 not reaching the threshold within the budget counts as its whole training time (a lower bound)
            speedups.append((peer["to_success_s"] or peer["seconds"]) / ours["to_success_s"])
    print(f"steps/s llm2 / sb3: {', '.join(f'{r:.1f}' for r in throughput)} (mean {statistics.mean(throughput):.1f})")
    if speedups:
        print(f"time to success sb3 / llm2: {', '.join(f'{r:.1f}' for r in speedups)} "
              f"(mean {statistics.mean(speedups):.1f})")


if __name__ == "__main__":
    main()
