"""The task's own offline proposer: varies the classic IRLS weight families (Huber, Tukey, Cauchy, Welsch) and their
tuning constants around the best candidates so far. No language model; same seed and history, same reply.

Each reply's code carries its spec on a ``# spec: FAMILY C`` line, which is how parents are read back from the
history (after a resume too).
"""

from __future__ import annotations

import json
import math
import random
import re

from llm2.proposers.base import ProposalRequest, Reply

FAMILIES = {  # family -> (expression of the scaled residual r and the constant {c}, default c, low, high)
    "huber": ("np.minimum(1.0, {c} / np.maximum(np.abs(r), 1e-12))", 1.345, 0.3, 5.0),
    "tukey": ("np.where(np.abs(r) < {c}, (1.0 - (r / {c}) ** 2) ** 2, 0.0)", 4.685, 1.0, 10.0),
    "cauchy": ("1.0 / (1.0 + (r / {c}) ** 2)", 2.385, 0.5, 8.0),
    "welsch": ("np.exp(-((r / {c}) ** 2))", 2.985, 0.5, 8.0),
}
SPEC = re.compile(r"^# spec: (\w+) ([0-9.eE+-]+)$", re.MULTILINE)


def render(family: str, c: float) -> str:
    name = f"{family}_{c:g}".replace(".", "_").replace("-", "m")
    expression = FAMILIES[family][0].format(c=f"{c:g}")
    return (f"# spec: {family} {c:g}\nimport numpy as np\n\n\ndef {name}(residuals):\n    r = residuals\n"
            f"    return {expression}\n")


class RobustWeightsProposer:
    name = "robust-weights-offline"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def propose(self, request: ProposalRequest) -> Reply:
        rng = random.Random(f"{self.name}:{self.seed}:{request.seed}:{len(request.history)}")
        scored = []
        seen = set()
        for candidate in request.history:
            match = SPEC.search(candidate.code)
            if match and match.group(1) in FAMILIES:
                spec = (match.group(1), float(match.group(2)))
                seen.add(spec)
                if candidate.fitness is not None and math.isfinite(candidate.fitness):
                    scored.append((candidate.fitness, spec))
        parents = [spec for _, spec in sorted(scored, reverse=True)[:3]]
        for _ in range(50):
            if parents and rng.random() < 0.7:
                family, c = rng.choice(parents)
                thought = f"Tune {family}'s constant around {c:g}, one of the best so far."
                c *= math.exp(rng.gauss(0.0, 0.3))
            else:
                family = rng.choice(sorted(FAMILIES))
                c = FAMILIES[family][1] * math.exp(rng.gauss(0.0, 0.2))
                thought = f"Try the {family} family near its textbook constant."
            low, high = FAMILIES[family][2:]
            spec = (family, float(f"{min(max(c, low), high):.3g}"))
            if spec not in seen:
                break
        code = render(*spec)
        name = code.split("def ", 1)[1].split("(", 1)[0]
        return Reply(json.dumps({"thought": thought, "name": name, "code": code}), model=self.name)
