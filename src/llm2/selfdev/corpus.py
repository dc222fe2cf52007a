"""The programs the offline default factory learns from: the task's baselines and variations of them written by
the task's own offline proposer.

No evaluation is spent on the corpus. Each proposal sees a history of earlier programs with pseudo-scores drawn at
random (seeded), so the proposer's choice of parents wanders over everything written so far instead of climbing:
the corpus is broad and mostly valid, and no better than a random walk among the task's known pieces, which is
what a factory that is to be refined should start from.
"""

from __future__ import annotations

import random

from llm2.discovery.parse import ReplyError, parse_reply
from llm2.proposers import ProposalRequest, ScoredCandidate, make_proposer


def build_corpus(task, programs: int, chains: int, baseline_copies: int, seed: int) -> list[str]:
    """The programs (code only): the baselines ``baseline_copies`` times, then ``programs`` proposals written in
    ``chains`` independent walks; deterministic for a seed."""
    if not task.offline_proposer:
        raise ValueError(f"task {task.name} has no offline proposer to write the default factory's programs; "
                         "give a model with --factory")
    corpus = [_code(b.code) for b in task.baselines.values()] * baseline_copies
    per_chain = -(-programs // chains)
    for chain in range(chains):
        proposer = make_proposer(task.offline_proposer, task=task, seed=seed * 1_000 + chain)
        rng = random.Random(f"corpus:{seed}:{chain}")
        history = [ScoredCandidate(b.name, b.code, rng.random(), "baseline", b.formula)
                   for b in task.baselines.values()]
        for step in range(min(per_chain, programs - chain * per_chain)):
            request = ProposalRequest(messages=(), history=tuple(history), temperature=1.0,
                                      seed=seed * 1_000_003 + chain * 10_007 + step)
            try:
                parsed = parse_reply(proposer.propose(request).text)
            except ReplyError:  # an offline proposer answers in the protocol's JSON; skip one that does not
                continue
            corpus.append(_code(parsed.code))
            history.append(ScoredCandidate(parsed.name, parsed.code, rng.random(), "ok", parsed.thought))
    return corpus


def _code(code: str) -> str:
    """The program without its comment lines: offline proposers keep bookkeeping there (a spec, a formula) that a
    language model would only learn to garble; what the factory learns is code."""
    lines = [line for line in code.strip("\n").splitlines() if not line.lstrip().startswith("#")]
    return "\n".join(lines) + "\n"
