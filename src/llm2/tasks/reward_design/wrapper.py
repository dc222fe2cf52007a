"""A discovered reward inside any gymnasium training loop: ``DiscoveredReward(env, reward_fn)`` replaces the
environment's reward with the sum of ``reward_fn``'s terms (the terms and the environment's own reward are kept in
``info``). ``llm2 export`` appends this file's code to the module it writes; llm2 itself never imports it."""

import gymnasium
import numpy
import torch


class DiscoveredReward(gymnasium.RewardWrapper):
    """gymnasium's RewardWrapper hands ``reward()`` only the environment's reward; a reward over transitions needs
    the step's observations, so ``step`` keeps the transition for ``reward`` to read."""

    def __init__(self, env, reward_fn):
        super().__init__(env)
        self.reward_fn = reward_fn
        self.last_obs = None
        self.transition = None
        self.terms = {}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.last_obs = obs
        return obs, info

    def step(self, action):
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        self.transition = (self.last_obs, action, obs, terminated)
        self.last_obs = obs
        reward = self.reward(env_reward)
        return obs, reward, terminated, truncated, {**info, "env_reward": env_reward, "reward_terms": self.terms}

    def reward(self, reward):
        obs, action, next_obs, terminated = self.transition
        space = self.env.action_space
        clipped = numpy.clip(numpy.asarray(action, dtype=numpy.float32), space.low, space.high)
        with torch.no_grad():
            terms = self.reward_fn(torch.as_tensor(numpy.asarray(obs), dtype=torch.float32)[None],
                                   torch.as_tensor(clipped, dtype=torch.float32).reshape(1, -1),
                                   torch.as_tensor(numpy.asarray(next_obs), dtype=torch.float32)[None],
                                   torch.tensor([bool(terminated)]))
        self.terms = {name: float(value[0]) for name, value in terms.items()}
        return sum(self.terms.values())
