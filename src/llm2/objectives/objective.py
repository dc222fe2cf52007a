"""An objective: a preference loss together with its formula, its source and the exact code text behind it."""

from __future__ import annotations

import inspect
import re
import textwrap
from dataclasses import dataclass, field
from typing import Callable

import torch

from llm2.candidate import load_function
from llm2.objectives.contract import PREFERENCE_CONTRACT
from llm2.tasks.base import CandidateError


@dataclass(frozen=True)
class Objective:
    """A named preference loss, callable with the preference contract; returns per-pair losses ``[batch]``."""

    name: str
    formula: str
    source: str  # citation: where the loss comes from
    code: str  # one function named ``loss``; shown to the proposer and loadable by llm2.candidate.load_function
    fn: Callable[..., torch.Tensor] = field(repr=False, compare=False)
    thought: str = ""  # the proposer's description, for discovered objectives

    def __call__(self, policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                 reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor,
                 beta: float) -> torch.Tensor:
        return self.fn(policy_chosen_logps, policy_rejected_logps,
                       reference_chosen_logps, reference_rejected_logps, beta)


def rename_function(code: str, old: str, new: str) -> str:
    """Rename the top-level ``def old(`` in ``code`` to ``def new(``."""
    renamed, count = re.subn(rf"^def {re.escape(old)}\(", f"def {new}(", code, count=1, flags=re.MULTILINE)
    if count != 1:
        raise ValueError(f"no top-level function {old!r} in the code")
    return renamed


def objective_from_function(fn: Callable[..., torch.Tensor], formula: str, source: str) -> Objective:
    """Wrap a plain module-level loss function; its code text is its own source with the def renamed to ``loss``."""
    code = rename_function(textwrap.dedent(inspect.getsource(fn)), fn.__name__, PREFERENCE_CONTRACT.function_name)
    return Objective(name=fn.__name__, formula=formula, source=source, code=code, fn=fn)


def objective_from_code(name: str, code: str, thought: str = "", formula: str = "",
                        source: str = "discovered") -> Objective:
    """Compile ``code`` (one function of the preference contract) into an Objective.

    Raises ValueError with a readable reason when the code does not compile or defines no usable function.
    """
    try:
        fn = load_function(code, PREFERENCE_CONTRACT, filename=f"<objective {name}>")
    except CandidateError as exc:
        raise ValueError(f"objective {name!r}: {exc}") from None
    return Objective(name=name, formula=formula, source=source, code=code, fn=fn, thought=thought)
