"""What a preference loss's training curves show, in this task's words, for the proposer's feedback.

The curves (``preference_synthetic.train.Watched``): the loss, the mean margin x = β·ρ and the mean log-ratios of
the chosen and the rejected completions (policy minus reference, in nats) at sub-sampled steps. The log-ratios are
what the KL from the reference grows with: a policy whose log-ratios run off has left the reference behind.
"""

from __future__ import annotations

import math

DRIFT_NATS = 30.0  # |mean log-ratio| past which the policy has run far from the reference (the reference run: < 10)
SATURATION = 0.1  # the margin's change over the last quarter, as a share of its whole rise, below which it is flat


def describe_curves(curves: dict[str, list[float]]) -> str:
    steps = curves.get("step") or []
    loss, margin = curves.get("loss") or [], curves.get("margin") or []
    chosen, rejected = curves.get("chosen_logratio") or [], curves.get("rejected_logratio") or []
    if not steps or not margin or not loss:
        return ""
    sentences = [_loss_text(steps, loss), _margin_text(margin)]
    drift = [text for text in (_drift_text(steps, chosen, "chosen"), _drift_text(steps, rejected, "rejected")) if text]
    if drift:
        sentences.append(" and ".join(drift) + ": the policy is running away from the reference (its KL grows with "
                         "these log-ratios), a sign of divergence")
    elif chosen and rejected:
        sentences.append(f"the mean log-ratios ended at {chosen[-1]:.3g} nats (chosen) and {rejected[-1]:.3g} nats "
                         "(rejected)")
    return "; ".join(s for s in sentences if s) + "."


def _loss_text(steps: list[float], loss: list[float]) -> str:
    finite = [i for i, v in enumerate(loss) if math.isfinite(v)]
    if not finite:
        return "the loss was never finite"
    if finite[-1] < len(loss) - 1:
        return f"the loss went from {loss[0]:.3g} to {loss[finite[-1]]:.3g} and then became non-finite after step " \
               f"{steps[finite[-1]]:.0f}"
    return f"the loss went from {loss[0]:.3g} to {loss[-1]:.3g}"


def _margin_text(margin: list[float]) -> str:
    text = f"the mean margin β·ρ went from {margin[0]:.3g} to {margin[-1]:.3g}"
    rise = max(margin) - margin[0]
    last_quarter = margin[len(margin) * 3 // 4:]
    if rise > 0.05 and len(last_quarter) > 1 and max(last_quarter) - min(last_quarter) < SATURATION * rise:
        text += " and then saturated (flat over the last quarter of training)"
    if margin[-1] < -0.05:
        text += ", below zero: the policy came to prefer the rejected completions"
    return text


def _drift_text(steps: list[float], ratio: list[float], which: str) -> str:
    past = next((i for i, v in enumerate(ratio) if not math.isfinite(v) or abs(v) > DRIFT_NATS), None)
    if past is None:
        return ""
    sign = "-" if ratio[past] < 0 else "+"
    return f"the {which} completions' log-ratio passed {sign}{DRIFT_NATS:g} nats after step {steps[past]:.0f} " \
           f"(ending at {ratio[-1]:.3g})"
