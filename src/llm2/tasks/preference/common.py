"""What both preference tasks share: the contract, the catalog as baselines, the contract's unit checks, the
offline proposer, the figures and the export notes. A preference task subclasses ``PreferenceTask``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from llm2.task_api.base import Baseline
from llm2.task_api.checks import backpropagate, check_gradient, per_example_losses
from llm2.tasks.defaults import TaskBase
from llm2.tasks.preference.catalog import OBJECTIVES
from llm2.tasks.preference.contract import PREFERENCE_CONTRACT
from llm2.tasks.preference.fingerprint import NOTE as FINGERPRINT_NOTE
from llm2.tasks.preference.fingerprint import CLUSTER_RADIUS
from llm2.tasks.preference.fingerprint import TOLERANCE as FINGERPRINT_TOLERANCE
from llm2.tasks.preference.fingerprint import loss_fingerprint

EXPERTISE = ("You are deeply familiar with binary classification losses from the literature. Be creative and "
             "reference prior literature when possible.")


class PreferenceTask(TaskBase):
    contract = PREFERENCE_CONTRACT
    baselines: dict[str, Baseline] = {name: o.as_baseline() for name, o in OBJECTIVES.items()}
    reference_baseline = "dpo"
    discovery_baselines = ("dpo", "hinge", "ipo", "kto_pair")
    offline_proposer = "symbolic"
    offline_proposers = {"symbolic": "llm2.tasks.preference.symbolic:SymbolicProposer"}

    def check_contract(self, fn: Callable[..., Any], data: Any = None) -> None:
        check_preference_contract(fn)

    # behavioural duplicates: the fingerprint is computed in the confined child (it calls the candidate); the loop
    # compares fingerprints within the tolerance and tells the proposer the note
    fingerprint_tolerance = FINGERPRINT_TOLERANCE
    fingerprint_note = FINGERPRINT_NOTE
    cluster_radius = CLUSTER_RADIUS

    def fingerprint(self, fn: Callable[..., Any], data: Any, settings: Any) -> list[float]:
        return loss_fingerprint(fn, settings.beta)

    def curves_text(self, curves: dict[str, list[float]]) -> str:
        """What the training curves show, for the feedback (tasks whose training records none: "")."""
        from llm2.tasks.preference.curves_text import describe_curves

        return describe_curves(curves)

    def figures(self, context: Any) -> list[Any]:
        from llm2.tasks.preference.figures import preference_figures

        return preference_figures(self, context)

    def plot_objectives(self, task_spec: str, items: Sequence[tuple[str, str]], settings: Any,
                        out: Path) -> list[str]:
        from llm2.sandbox.confined_call import call_confined
        from llm2.tasks.preference.plots import plot_loss_shapes
        from llm2.tasks.preference.shapes import shapes_of

        def confined(entry: str, chosen: Sequence[tuple[str, str]], payload: dict) -> list:
            return call_confined(task_spec, entry, chosen, payload)

        shapes = shapes_of(confined, items, settings.beta)
        plot_loss_shapes(shapes, out, settings.beta)
        return [f"{s.name} could not be evaluated: {s.error}" for s in shapes if s.error]

    def plot_results(self, path: Path, out: Path) -> list[str]:
        from llm2.tasks.preference.frontier import frontier_from_evaluate_json, has_frontier
        from llm2.tasks.preference.plots import plot_frontier

        series, notes = frontier_from_evaluate_json(path)
        if not series:
            raise ValueError(f"{path} holds no successful result to plot")
        if not has_frontier(series):
            notes.append("every objective was measured at a single β; a frontier needs several (run llm2 evaluate "
                         "with -o beta=... given several times)")
        if not any(s.name == self.reference_baseline for s in series):
            notes.append(f"{self.reference_baseline} is not in this file; evaluate it too to draw the reference")
        plot_frontier(series, out)
        return notes

    def export_usage(self, example: str, file_name: str) -> str:
        module = file_name.removesuffix(".py")
        return f'''Each function follows the preference contract and returns per-pair losses of shape [batch]
(training minimises their mean); the log-probabilities are summed over each completion's tokens:

    {example}(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta)

With TRL (pip install 'llm2[hf]'):
    from llm2.tasks.preference.trl import ObjectiveDPOTrainer
    from {module} import {example}
    trainer = ObjectiveDPOTrainer(objective={example}, model=..., ref_model=..., args=DPOConfig(...),
                                  train_dataset=..., processing_class=...)'''


def check_preference_contract(fn: Callable[..., Any], beta: float = 0.05) -> None:
    """Call ``fn`` on random batches of 8 and 1; raise CandidateError(stage='contract') saying what is wrong."""
    generator = torch.Generator().manual_seed(0)
    for batch in (8, 1):
        # plausible inputs: summed log-probs of short completions, the policy a little off the reference
        reference = -30.0 + 5.0 * torch.randn(2, batch, generator=generator)
        policy = (reference + 0.5 * torch.randn(2, batch, generator=generator)).requires_grad_(True)
        where = f"on a batch of {batch}"
        losses = per_example_losses(fn, (policy[0], policy[1], reference[0], reference[1], beta), batch, where,
                                    "contract")
        backpropagate(losses.sum(), where, "contract")
        check_gradient(policy, "the policy log-probs", where)
