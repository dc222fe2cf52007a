"""The ``checkpoint`` a task's ``train`` is given: the cascade's probe, and the pauses of a run along the rungs.

Every task calls ``checkpoint(output)`` once, at ``probe_fraction`` of its budget (the cascade's probe; False: stop).
A task whose run at a share of the budget is the first part of the run at the whole budget (constant learning
rate, the same batch order) says so with ``can_pause`` and then also calls ``checkpoint.pause(budget, output)``
when its run reaches each budget in ``pause_budgets(checkpoint)``, in the same unit as ``EvalSetting.budget``.
There the parent scores the weights as a rung's evaluation and decides: True, train on (the candidate was
promoted: its rung's training is not repeated); False, stop (the run's record is the rung's, as if it had been
trained at that budget alone).
"""

from __future__ import annotations

from typing import Any, Callable

# probe(output) -> go on; pause(budget, output) -> go on
ProbeCall = Callable[[Any], bool]
PauseCall = Callable[[float, Any], bool]


class Checkpoint:
    """What ``train`` gets as ``checkpoint`` when the run is probed or paused; plain callables still work."""

    def __init__(self, probe: ProbeCall | None, pause: PauseCall | None, pauses: tuple[float, ...]):
        self._probe, self._pause = probe, pause
        self.pauses = tuple(pauses) if pause is not None else ()

    def __call__(self, output: Any) -> bool:
        """The cascade's probe (True without asking when the run has none: only pauses were asked for)."""
        return True if self._probe is None else self._probe(output)

    def pause(self, budget: float, output: Any) -> bool:
        return True if self._pause is None else self._pause(budget, output)


def pause_budgets(checkpoint: Any) -> tuple[float, ...]:
    """The budgets at which ``train`` must call ``checkpoint.pause`` (none for a plain callable or None)."""
    return checkpoint.pauses if isinstance(checkpoint, Checkpoint) else ()
