"""Warming up before any candidate runs, so what training imports lazily is imported while that is still allowed.

Its own module, below the worker, the runner and the child, which all use it.
"""

from __future__ import annotations

from typing import Any

from llm2.task_api.optional import optional


def warm_up(task: Any, settings: Any, data: Any) -> None:
    """Before any candidate runs (in a worker, before it forks; in a spawned child, before it confines itself):
    the task's own ``warm_up`` hook when it has one, else a sliver of training of its reference baseline. Whatever
    training imports lazily (an optimiser pulls in torch._dynamo) is then already imported: a confined child runs
    as another user, who may not be able to read the interpreter's files at all."""
    hook = optional(task, "warm_up")
    if hook is not None:
        hook(settings, data)
    else:
        train_reference_briefly(task, settings, data)


def train_reference_briefly(task: Any, settings: Any, data: Any) -> None:
    """Train the task's reference baseline (trusted code) for a sliver of the budget."""
    from llm2.sandbox.loader import load_function
    from llm2.task_api.base import EvalSetting

    baseline = task.baselines.get(task.reference_baseline)
    if baseline is None:
        return
    fn = load_function(baseline.code, task.contract, filename=f"<baseline {baseline.name}>")
    task.check_contract(fn, data)
    task.train(fn, data, EvalSetting(settings, 0, budget=1e-6))
