"""The preference-loss contract: the one function every preference objective (known or discovered) defines."""

from __future__ import annotations

from llm2.task_api.base import Contract
from llm2.task_api.vocabulary import TENSOR_VOCABULARY

PREFERENCE_ARGUMENTS: tuple[str, ...] = (
    "policy_chosen_logps",
    "policy_rejected_logps",
    "reference_chosen_logps",
    "reference_rejected_logps",
    "beta",
)

PREFERENCE_CONTRACT = Contract(
    arguments=PREFERENCE_ARGUMENTS,
    example_name="loss",
    description="""\
def loss(policy_chosen_logps, policy_rejected_logps,
         reference_chosen_logps, reference_rejected_logps, beta) -> torch.Tensor

- policy_chosen_logps, policy_rejected_logps: float tensors of shape [batch], the log-probability of the chosen
  (preferred) and rejected completion under the policy being trained, summed over the completion's tokens.
- reference_chosen_logps, reference_rejected_logps: the same under the frozen reference policy (no gradient).
- beta: a Python float, the strength of the pull towards the reference (e.g. 0.05).
- Return the per-pair losses, a float tensor of shape [batch] (one value per pair, not reduced); training
  minimises their mean. The function may have any name. Use only torch, torch.nn.functional as F and math; keep
  constants inside the function.
- Example (DPO): x = beta * ((policy_chosen_logps - policy_rejected_logps)
  - (reference_chosen_logps - reference_rejected_logps)); return -F.logsigmoid(x)""",
    vocabulary=TENSOR_VOCABULARY,  # torch's, F's and math's pure functions, tensor methods, pure builtins
)
