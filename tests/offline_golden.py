"""The first proposals of every built-in offline proposer at fixed seeds, from a history that grows as a discovery's
does (each proposal scored by a stand-in fitness read off its code's hash): what test_offline_proposers compares
against, so that a change to the offline proposers' shared base cannot change a single proposal.

Run as a script to rewrite tests/data/offline_proposals.json (only when a change of proposals is intended)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from llm2.proposers import make_proposer
from llm2.proposers.base import Message, ProposalRequest, ScoredCandidate

GOLDEN = Path(__file__).parent / "data" / "offline_proposals.json"
ROUNDS = 4  # generations
POPULATION = 3  # proposals per generation, each seeing the same history

FOREIGN = "def loss(a, b, c, d, beta):\n    return (a - b).abs()\n"
CASES = {  # case -> (proposer, its seed, the opening message, baselines as (name, fitness))
    "symbolic": ("symbolic", 0, "Propose a loss.", [("dpo", 0.70), ("ipo", 0.66), ("hinge", 0.72),
                                                     ("stranger", 0.71)]),
    "symbolic-seed-3": ("symbolic", 3, "Propose a loss.", []),
    "classification": ("classification-offline", 0, "Propose a loss.",
                       [("cross_entropy", 0.61), ("label_smoothing", 0.63), ("focal", 0.60)]),
    "merging": ("merging-offline", 0, "Propose a merge rule.",
                [("task_arithmetic", 0.50), ("ties", 0.55), ("dare_linear", 0.52), ("model_stock", 0.56)]),
    "reward-design": ("reward-design-offline", 0, "Pendulum-v1, 20,000 PPO steps.",
                      [("environment", -300.0), ("shaped", -250.0)]),
    "reward-design-car": ("reward-design-offline", 1, "Propose a reward.", [("environment", 10.0)]),
}


def stand_in_fitness(code: str) -> float:
    return int(hashlib.sha256(code.encode()).hexdigest()[:8], 16) / 2 ** 32


def proposals(case: str) -> list[str]:
    proposer_name, seed, opening, baselines = CASES[case]
    proposer = make_proposer(proposer_name, seed=seed)
    history = [ScoredCandidate(name, FOREIGN if name in ("stranger", "model_stock") else "", fitness, "ok")
               for name, fitness in baselines]
    replies = []
    for generation in range(ROUNDS):
        answered = []
        for index in range(POPULATION):
            request = ProposalRequest((Message("user", opening),), tuple(history), 0.7, generation * 100 + index)
            reply = proposer.propose(request)
            replies.append(reply.text)
            answered.append(json.loads(reply.text))
        for number, answer in enumerate(answered):
            fitness = None if number == 2 and generation == 1 else stand_in_fitness(answer["code"])
            history.append(ScoredCandidate(answer["name"], answer["code"], fitness, "ok" if fitness else "failed",
                                           answer["thought"]))
    return replies


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps({case: proposals(case) for case in CASES}, indent=1, ensure_ascii=False) + "\n")
