"""Known and discovered preference losses, usable without the rest of llm2 (only torch needed).

    from llm2.objectives import OBJECTIVES
    losses = OBJECTIVES["discopop"](policy_chosen_logps, policy_rejected_logps,
                                    reference_chosen_logps, reference_rejected_logps, beta=0.05)  # [batch]
"""

from llm2.objectives.catalog import OBJECTIVES, get_objective
from llm2.objectives.contract import PREFERENCE_ARGUMENTS, PREFERENCE_CONTRACT
from llm2.objectives.files import load_objective_file, objective_source, write_objective_file
from llm2.objectives.objective import Objective, objective_from_code

__all__ = [
    "OBJECTIVES",
    "PREFERENCE_ARGUMENTS",
    "PREFERENCE_CONTRACT",
    "Objective",
    "get_objective",
    "load_objective_file",
    "objective_from_code",
    "objective_source",
    "write_objective_file",
]
