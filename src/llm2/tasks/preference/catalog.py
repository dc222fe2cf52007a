"""The catalog of known preference losses: name -> Objective (docs/tasks.md lists the sources).

``OBJECTIVES`` maps a name to an ``Objective``: the trusted function from ``losses.py``, its formula, its source
and its code text (the function's own source, shown to the proposer as a baseline). Needs only torch.

    from llm2.tasks.preference.catalog import OBJECTIVES
    losses = OBJECTIVES["discopop"](policy_chosen_logps, policy_rejected_logps,
                                    reference_chosen_logps, reference_rejected_logps, beta=0.05)  # [batch]
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Callable

import torch

from llm2.task_api.base import Baseline
from llm2.tasks.preference import losses


@dataclass(frozen=True)
class Objective:
    """A named preference loss, callable with the preference contract; returns per-pair losses ``[batch]``."""

    name: str
    formula: str
    source: str  # citation: where the loss comes from
    code: str  # the function's source text (it keeps its own name: any name satisfies the contract)
    fn: Callable[..., torch.Tensor] = field(repr=False, compare=False)

    def __call__(self, policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                 reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor,
                 beta: float) -> torch.Tensor:
        return self.fn(policy_chosen_logps, policy_rejected_logps,
                       reference_chosen_logps, reference_rejected_logps, beta)

    def as_baseline(self) -> Baseline:
        return Baseline(self.name, self.code, self.formula, self.source)


# name -> (formula, source). Notation: r_c = logπ(y_c) − logπ_ref(y_c), r_r likewise, ρ = r_c − r_r, x = β·ρ,
# σ the logistic function, τ = 0.05; batch statistics over the pairs of the batch (population form).
_TABLE: dict[str, tuple[str, str]] = {
    "dpo": ("−log σ(x)", "Rafailov et al. 2023; TRL `sigmoid`"),
    "hinge": ("max(0, 1 − x)", "SLiC, Zhao et al. 2023; TRL `hinge`"),
    "ipo": ("(ρ − 1/(2β))²", "Azar et al. 2023 (TRL averages log-probs per token first)"),
    "cdpo": ("−(1−ε) log σ(x) − ε log σ(−x), ε = 0.1", "label-smoothed DPO (Mitchell 2023)"),
    "robust": ("[−(1−ε) log σ(x) + ε log σ(−x)] / (1 − 2ε), ε = 0.1", "Chowdhury et al. 2024; TRL `robust`"),
    "exo_pair": ("σ(x)(log σ(x) − log(1−ε)) + σ(−x)(log σ(−x) − log ε), ε = 1e-3",
                 "Ji et al. 2024; TRL `exo_pair`"),
    "nca_pair": ("−log σ(βr_c) − ½ log σ(−βr_c) − ½ log σ(−βr_r)", "Chen et al. 2024; TRL `nca_pair`"),
    "bco_pair": ("−log σ(βr_c) − log σ(−βr_r)", "Jung et al. 2024; TRL `bco_pair`"),
    "sppo_hard": ("(r_c − 1/(2β))² + (r_r + 1/(2β))²", "Wu et al. 2024; TRL `sppo_hard`"),
    "apo_zero": ("(1 − σ(βr_c)) + σ(βr_r)", "D'Oosterlinck et al. 2024; TRL `apo_zero`"),
    "apo_down": ("σ(βr_c) + (1 − σ(x))", "D'Oosterlinck et al. 2024; TRL `apo_down`"),
    "kto_pair": ("z_c = max(0, mean r_c), z_r = max(0, mean r_r); "
                 "(1 − σ(β(r_c − z_r))) + (1 − σ(β(z_c − r_r)))",
                 "Ethayarajh et al. 2024; the DiscoPOP paper's KTO baseline"),
    "discopop": ("(1 − σ(x/τ))·(−log σ(x)) + σ(x/τ)·exp(−x)",
                 "LRML, discovered in Lu et al. 2024 (arXiv 2406.08414); TRL `discopop`"),
    "cell": ("½(−log σ(x)) + ½ exp(−x)", "discovered in Lu et al. 2024"),
    "padll": ("0.9·(1 − 0.5·[ρ < 0])·(−log σ(x))", "discovered in Lu et al. 2024"),
    "aql": ("m = 0.5 + 0.01(σ(mean(x/τ)) − 0.5); q = σ(τm − x); q(−log σ(x)) + (1−q) max(0, 1−x)",
            "discovered in Lu et al. 2024"),
    "aqfl": ("s = std(x/τ); m1 = s·mean(σ(−x/τ)); m2 = m1 + 0.05(σ(mean(x/τ)) − m1); r = σ(0.1·|x/τ − m2|); "
             "r(−log σ(x)) + (1−r) max(0, 1−x)", "discovered in Lu et al. 2024"),
    "dbaql": ("c = σ(var(x/τ)); c(−log σ(x/0.9)) + (1−c) exp(−0.9x)", "discovered in Lu et al. 2024"),
    "pfl": ("if logπ(y_c) > logπ(y_r): ½(−log σ(x/τ)) else 2·max(0, 1 − x/τ)", "discovered in Lu et al. 2024"),
}

OBJECTIVES: dict[str, Objective] = {
    name: Objective(name, formula, source, textwrap.dedent(inspect.getsource(getattr(losses, name))),
                    getattr(losses, name))
    for name, (formula, source) in _TABLE.items()
}
