"""Ask a proposer for one candidate, re-asking a bounded number of times when the reply cannot be used.

The conversation after a call is ``request.messages + outcome.exchanges + (assistant: outcome.replies[-1].text)``:
``exchanges`` holds, in order, each unusable assistant reply followed by the re-ask prompt sent after it; the last
reply (usable or not) is left for the loop to append, so the same rule holds whether or not ``error`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from llm2.discovery.parse import ParsedReply, ReplyError, parse_reply
from llm2.discovery.prompts import PromptBook
from llm2.proposers.base import Message, ProposalRequest, Proposer, Reply


def default_reask(reason: str) -> str:
    return PromptBook().render("reask", reason=reason)


@dataclass(frozen=True)
class AskOutcome:
    parsed: ParsedReply | None  # None when every attempt was unusable
    replies: tuple[Reply, ...]  # every reply received, in order (for token and cost accounting)
    exchanges: tuple[Message, ...]  # unusable assistant replies and the re-ask prompts, in order
    events: tuple[str, ...]  # "repair:<tag>", "reask:<reason>", "unusable:<reason>"
    error: str | None  # why no candidate came out, when parsed is None


def ask_for_candidate(proposer: Proposer, request: ProposalRequest, max_reasks: int = 2,
                      reask: Callable[[str], str] = default_reask) -> AskOutcome:
    """Call ``proposer.propose`` until a reply parses, at most ``1 + max_reasks`` times.

    ProposerError (and BudgetExceeded) from the proposer propagate: the caller decides whether the run stops.
    """
    if max_reasks < 0:
        raise ValueError(f"max_reasks must be 0 or more, got {max_reasks}")
    replies: list[Reply] = []
    exchanges: list[Message] = []
    events: list[str] = []
    current = request
    for attempt in range(max_reasks + 1):
        reply = proposer.propose(current)
        replies.append(reply)
        try:
            parsed = parse_reply(reply.text)
        except ReplyError as exc:
            reason = str(exc)
            if attempt == max_reasks:
                events.append(f"unusable:{reason}")
                error = f"no usable reply after {attempt + 1} attempt{'s' if attempt else ''}: {reason}"
                return AskOutcome(None, tuple(replies), tuple(exchanges), tuple(events), error)
            events.append(f"reask:{reason}")
            exchanges += [Message("assistant", reply.text), Message("user", reask(reason))]
            current = replace(request, messages=request.messages + tuple(exchanges))
            continue
        events += [f"repair:{tag}" for tag in parsed.repairs]
        return AskOutcome(parsed, tuple(replies), tuple(exchanges), tuple(events), None)
    raise AssertionError("unreachable")  # the loop always returns
