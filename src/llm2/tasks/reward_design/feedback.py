"""Eureka's reward reflection in the task's words: how the policy did on the true goal (held-out and nominal
dynamics, where the failures ended up), how success rose while training, and each reward term's mean per step at
the start, at the end and over the whole run, so the proposer can see which terms drove the policy."""

from __future__ import annotations

import math
from typing import Any, Mapping

from llm2.tasks.reward_design.ppo import PHASES


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: float) -> str:
    return f"{value:+.3g}"


def reflection_text(values: Mapping[str, float]) -> str:
    parts = []
    if _finite(values.get("success_rate")):
        goal = f"held-out success {values['success_rate']:.3f}"
        if _finite(values.get("steps_to_goal")):
            goal += f", {values['steps_to_goal']:.0f} steps to the goal on average (a failure counts the time limit)"
        if _finite(values.get("nominal_success")):
            goal += f"; on the nominal dynamics {values['nominal_success']:.3f}"
        parts.append(goal)
    if _finite(values.get("fail_highest_position")) and values.get("fail_share", 0) > 0:
        parts.append(f"the failed episodes ({values['fail_share']:.0%}) got no further right than position "
                     f"{values['fail_highest_position']:.2f} on average (the flag is at 0.45, the valley's bottom "
                     "near -0.52)")
    if _finite(values.get("fail_final_angle")) and values.get("fail_share", 0) > 0:
        parts.append(f"the failed episodes ({values['fail_share']:.0%}) ended {values['fail_final_angle']:.2f} rad "
                     "from upright on average (success needs < 0.3 for the last 50 steps)")
    curve = [values.get(f"train_success_{phase}") for phase in range(PHASES)]
    if any(_finite(v) for v in curve):
        parts.append("share of the training episodes ending in each tenth of training that reached the goal: "
                     + " ".join(f"{v:.2f}" if _finite(v) else "-" for v in curve) + " (-: none ended)")
    terms = sorted(key.removeprefix("term.") for key in values if key.startswith("term.") and not key.endswith("_std"))
    shown = []
    for name in terms:
        whole, first, last = (values.get(f"{kind}.{name}") for kind in ("term", "term_first", "term_last"))
        if _finite(whole) and _finite(first) and _finite(last):
            shown.append(f"{name} {_number(first)} → {_number(last)} (mean {_number(whole)})")
    if shown:
        parts.append("reward terms per step, first tenth → last tenth of training: " + "; ".join(shown))
    return "; ".join(parts)
