"""Merge rules as small specs, and their code: the space the offline proposer searches.

A rule is task arithmetic with options, each from a known method:

- sparsify each task vector: ``none``; ``magnitude`` (keep the largest ``density`` share, after dropping the
  ``outliers`` share of the very largest, as TIES and Model Breadcrumbs do); ``random`` (keep a random ``density``
  share, as DARE does); with ``rescale`` the survivors are divided by ``density`` (DARE's 1/(1 − p));
- combine the task vectors: ``sum`` (task arithmetic), ``mean`` (the soup), ``ties`` (elect each entry's sign by
  total magnitude, then the mean of the agreeing values) or ``ties_sum`` (the same, summed);
- scale by ``lam`` times a factor per part of the model, read from the parameter's name (embeddings, attention,
  MLP, norms, output head).

Every rule's code carries its spec on a ``# llm2-rule:`` line, which is how the proposer reads its own candidates
back after a resume; the catalog's baselines that are rules are known by name.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace

from llm2.tasks.merging.baselines import TASK_ARITHMETIC_LAMBDA

SPARSIFY = ("none", "magnitude", "random")
COMBINE = ("sum", "mean", "ties", "ties_sum")
PARTS = ("embed", "attn", "mlp", "norm", "head")
# How a parameter's name tells its part (first match wins; Llama, GPT-2 and most Hugging Face names)
PART_WORDS = (("head", ("lm_head",)), ("embed", ("embed", "wte", "wpe")), ("norm", ("norm", "ln_")),
              ("attn", ("attn", "attention")), ("mlp", ("mlp", "feed_forward", "ffn")))
RULE_LINE = re.compile(r"^\s*# llm2-rule: (\{.*\})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Rule:
    sparsify: str = "none"
    density: float = 1.0
    outliers: float = 0.0
    rescale: bool = False
    combine: str = "sum"
    lam: float = 0.5
    scales: dict[str, float] = field(default_factory=dict)  # part -> factor; missing parts: 1

    def normalised(self) -> Rule:
        """Numbers rounded to 3 significant digits and kept in range, unused options reset: equal rules are equal."""
        density = 1.0 if self.sparsify == "none" else _clip(self.density, 0.01, 1.0)
        outliers = _clip(self.outliers, 0.0, 0.2) if self.sparsify == "magnitude" else 0.0
        scales = {p: _clip(v, 0.0, 4.0) for p, v in sorted(self.scales.items()) if p in PARTS}
        scales = {p: v for p, v in scales.items() if v != 1.0}
        return replace(self, density=density, outliers=outliers, rescale=self.rescale and self.sparsify != "none",
                       lam=_clip(self.lam, 0.01, 4.0), scales=scales)

    def key(self) -> str:
        return json.dumps(asdict(self.normalised()), sort_keys=True)


def _clip(value: float, low: float, high: float) -> float:
    return float(f"{min(high, max(low, float(value))):.3g}")


# The catalog's baselines that are rules (model_stock and slerp are not: they are read as strangers)
BASELINE_RULES = {
    "task_arithmetic": Rule(lam=TASK_ARITHMETIC_LAMBDA),
    "average": Rule(combine="mean", lam=1.0),
    "ties": Rule(sparsify="magnitude", density=0.2, combine="ties", lam=1.0),
    "dare_linear": Rule(sparsify="random", density=0.1, rescale=True, lam=TASK_ARITHMETIC_LAMBDA),
    "dare_ties": Rule(sparsify="random", density=0.1, rescale=True, combine="ties", lam=1.0),
    "breadcrumbs": Rule(sparsify="magnitude", density=0.143, outliers=0.007, lam=TASK_ARITHMETIC_LAMBDA),
}


def read_rule(name: str, code: str) -> Rule | None:
    """The rule of a baseline (by name) or of a rule's own code (its spec line); None for anything else."""
    if name in BASELINE_RULES:
        return BASELINE_RULES[name].normalised()
    found = RULE_LINE.search(code or "")
    if not found:
        return None
    try:
        spec = json.loads(found.group(1))
        rule = Rule(sparsify=spec["sparsify"], density=float(spec["density"]), outliers=float(spec["outliers"]),
                    rescale=bool(spec["rescale"]), combine=spec["combine"], lam=float(spec["lam"]),
                    scales={str(k): float(v) for k, v in dict(spec.get("scales", {})).items()})
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if rule.sparsify not in SPARSIFY or rule.combine not in COMBINE:
        return None
    return rule.normalised()


def describe(rule: Rule) -> str:
    rule = rule.normalised()
    parts = []
    if rule.sparsify == "magnitude":
        outliers = f" after dropping the top {rule.outliers:.3g}" if rule.outliers else ""
        parts.append(f"keep the top {rule.density:.3g} of each task vector by magnitude{outliers}")
    elif rule.sparsify == "random":
        parts.append(f"keep a random {rule.density:.3g} of each task vector")
    if rule.rescale:
        parts.append(f"rescale the survivors by 1/{rule.density:.3g}")
    parts.append({"sum": "sum the task vectors", "mean": "average the task vectors",
                  "ties": "elect signs and average the agreeing values (TIES)",
                  "ties_sum": "elect signs and sum the agreeing values"}[rule.combine])
    scaled = ", ".join(f"{p} ×{v:.3g}" for p, v in rule.scales.items())
    parts.append(f"scale by λ = {rule.lam:.3g}" + (f" ({scaled})" if scaled else ""))
    return "; ".join(parts)


def render(rule: Rule) -> str:
    """The rule as a self-contained merge function in the contract."""
    rule = rule.normalised()
    lines = [f"# llm2-rule: {rule.key()}", "def merge(name, base, experts):",
             f"    lam = {rule.lam!r}",
             "    deltas = torch.stack([expert - base for expert in experts]).reshape(len(experts), -1)"]
    if rule.sparsify == "magnitude":
        lines += [
            "    size = deltas.shape[1]",
            "    magnitude = deltas.abs()",
            "    keep = torch.ones_like(deltas, dtype=torch.bool)"]
        if rule.outliers:
            lines += [
                f"    first = int({rule.outliers!r} * size)  # the largest outliers are dropped",
                "    if first > 0:",
                "        keep &= magnitude <= magnitude.kthvalue(size - first, dim=1, keepdim=True).values"]
        else:
            lines.append("    first = 0")
        lines += [
            f"    last = min(size, first + max(1, int({rule.density!r} * size)))  # then the next largest are kept",
            "    if last < size:",
            "        keep &= magnitude > magnitude.kthvalue(size - last, dim=1, keepdim=True).values",
            "    deltas = deltas * keep"]
    elif rule.sparsify == "random":
        lines.append(f"    deltas = deltas * torch.bernoulli(torch.full_like(deltas, {rule.density!r}))")
    if rule.rescale:
        lines.append(f"    deltas = deltas / {rule.density!r}")
    if rule.combine == "sum":
        lines.append("    merged = deltas.sum(dim=0)")
    elif rule.combine == "mean":
        lines.append("    merged = deltas.mean(dim=0)")
    else:
        lines += ["    sign = torch.sign(deltas.sum(dim=0))  # per entry, the sign with the larger total magnitude",
                  "    agree = (torch.sign(deltas) == sign) & (deltas != 0)",
                  "    merged = (deltas * agree).sum(dim=0)"]
        if rule.combine == "ties":
            lines.append("    merged = merged / agree.sum(dim=0).clamp(min=1)")
    if rule.scales:
        words = ", ".join(f"({part!r}, {words!r})" for part, words in PART_WORDS)
        lines += [f"    scales = {dict(rule.scales)!r}  # per part of the model, by the parameter's name",
                  f"    for part, words in ({words}):",
                  "        if any(word in name for word in words):",
                  "            lam = lam * scales.get(part, 1.0)",
                  "            break"]
    lines.append("    return base + lam * merged.reshape(base.shape)")
    return "\n".join(lines) + "\n"
