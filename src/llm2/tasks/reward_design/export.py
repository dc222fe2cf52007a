"""Exporting rewards: the module llm2 writes holds the discovered reward functions (rewritten from their source,
never run) plus the gymnasium wrapper of ``wrapper.py`` (read as text: llm2 needs no gymnasium to export)."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def wrapper_source() -> str:
    """``wrapper.py`` without its module docstring."""
    source = (Path(__file__).parent / "wrapper.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    first = tree.body[1] if isinstance(tree.body[0], ast.Expr) else tree.body[0]
    return "\n".join(source.splitlines()[first.lineno - 1:]) + "\n"


def reward_module_text(entries: Sequence[Any], run: Any, task: Any, file_name: str) -> str:
    from llm2.archive.export import module_text

    return (module_text(list(entries), run, task, file_name).rstrip() + "\n\n\n"
            "# A gymnasium wrapper that trains on one of the rewards above (needs gymnasium)\n" + wrapper_source())


def reward_usage(example: str, file_name: str) -> str:
    module = file_name.removesuffix(".py")
    return f'''Each function is a reward over a batch of transitions that returns its terms by name (the reward is
their sum):

    {example}(obs, action, next_obs, terminated)    # float [batch, obs_dim], [batch, 1], [batch, obs_dim]; bool [batch]

In any gymnasium training loop (the environment's own reward is kept in info["env_reward"]):
    import gymnasium
    from {module} import OBJECTIVES, DiscoveredReward
    env = DiscoveredReward(gymnasium.make("MountainCarContinuous-v0"), OBJECTIVES["{example}"])

A reward's domain randomisation (DOMAIN_RANDOMIZATION) applies to llm2's own training only.'''
