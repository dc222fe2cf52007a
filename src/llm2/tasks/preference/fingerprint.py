"""A preference loss's behavioural fingerprint: what training would see of it, on a fixed probe batch.

Training only ever sees a loss through the gradient of its batch mean with respect to the policy's log-probs, and
Adam cannot tell a gradient from the same gradient times a positive constant. So the fingerprint is that gradient
on a fixed grid of pairs, divided by its norm: two losses with equal fingerprints train identically (``a·f + c``
for any ``a > 0`` and constant ``c`` has the fingerprint of ``f``). Runs in the confined child (it calls the
candidate).

The grid spans the margins training visits: ``x = β·ρ`` from −2 to 2, every combination of the chosen and the
rejected log-ratio, so a loss whose shape changes inside that range (a hinge that stops pushing at ``x = 1``)
differs from one that does not.
"""

from __future__ import annotations

from typing import Callable

import torch

GRID = 8  # log-ratios per side: GRID² pairs
MARGIN_SPAN = 2.0  # the probe's largest |x| = β·|ρ|
REFERENCE_LOGP = -30.0  # summed log-probs of a short completion, as in the contract checks
TOLERANCE = 1e-4  # largest difference per entry of two unit-norm fingerprints that still counts as the same
# the report's clusters: unit-norm gradients within 0.1 have a cosine above 0.995 (dpo with labels smoothed by 2 %
# lies 0.014 from dpo, hinge 0.32)
CLUSTER_RADIUS = 0.1
NOTE = ("its gradient on a fixed probe batch equals that candidate's up to a positive factor, which the Adam "
        "optimiser cannot tell apart, so it would train identically")


def loss_fingerprint(fn: Callable, beta: float) -> list[float]:
    """The unit-norm gradient of the mean loss over the probe grid w.r.t. the policy's chosen and rejected
    log-probs; empty when the gradient is zero or not finite (such a loss is simply evaluated)."""
    half = MARGIN_SPAN / (2.0 * beta)  # each log-ratio spans ±half, so ρ = r_c − r_r spans ±2·half
    ratios = torch.linspace(-half, half, GRID, dtype=torch.float64)
    chosen_ratio, rejected_ratio = (t.reshape(-1) for t in torch.meshgrid(ratios, ratios, indexing="ij"))
    # references differ a little per pair so that losses reading them are not all handed one constant
    reference_chosen = REFERENCE_LOGP + torch.linspace(-3.0, 3.0, GRID * GRID, dtype=torch.float64)
    reference_rejected = reference_chosen.flip(0) - 1.0
    chosen = (reference_chosen + chosen_ratio).float().requires_grad_(True)
    rejected = (reference_rejected + rejected_ratio).float().requires_grad_(True)
    losses = fn(chosen, rejected, reference_chosen.float(), reference_rejected.float(), float(beta))
    if not isinstance(losses, torch.Tensor) or losses.shape != chosen.shape:
        return []
    grad_chosen, grad_rejected = torch.autograd.grad(losses.mean(), (chosen, rejected), allow_unused=True)
    if grad_chosen is None or grad_rejected is None:
        return []
    gradient = torch.cat([grad_chosen, grad_rejected]).double()
    norm = gradient.norm()
    if not torch.isfinite(norm) or norm == 0:
        return []
    return (gradient / norm).tolist()



def confined_fingerprint(fn: Callable, payload: dict) -> list[float]:
    """``loss_fingerprint`` as an entry of ``llm2.sandbox.confined_call`` (a candidate's fingerprint after the fact,
    e.g. for a run that did not take them)."""
    return loss_fingerprint(fn, float(payload["beta"]))
