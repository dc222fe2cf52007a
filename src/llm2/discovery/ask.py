"""Ask a proposer for one candidate, re-asking a bounded number of times when the reply cannot be used.

Every reply is handed to ``record`` the moment it arrives (the archive keeps it, its tokens and its cost, with the
exact request), so nothing paid for is lost if the run dies mid-ask; replies an earlier, killed session already
received for this candidate are passed in as ``earlier`` and used again instead of asking (and paying) twice.

The conversation after a call is ``request.messages + outcome.exchanges + (assistant: outcome.replies[-1].text)``:
``exchanges`` holds, in order, each unusable assistant reply followed by the re-ask prompt sent after it; the last
reply (usable or not) is left for the loop to append, so the same rule holds whether or not ``error`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

from llm2.discovery.curve_images import image_record
from llm2.discovery.parse import ParsedReply, ReplyError, parse_reply
from llm2.proposers.base import Message, ProposalRequest, Proposer, ProposerError, Reply

# record(attempt, request as sent, reply or None, error or None) -> the recorded request's id
Recorder = Callable[[int, dict, "Reply | None", "str | None"], int]


@dataclass(frozen=True)
class AskOutcome:
    parsed: ParsedReply | None  # None when every attempt was unusable
    replies: tuple[Reply, ...]  # every reply received, in order (for token and cost accounting)
    exchanges: tuple[Message, ...]  # unusable assistant replies and the re-ask prompts, in order
    events: tuple[str, ...]  # "repair:<tag>", "reask:<reason>", "unusable:<reason>", "reused:<n>"
    error: str | None  # why no candidate came out, when parsed is None
    request_ids: tuple[int, ...] = ()  # the recorded requests this candidate came from


def request_payload(proposer: Proposer, request: ProposalRequest) -> dict:
    """The request as the archive keeps it: enough to train a proposer on (prompt, better, worse) later."""
    payload = {"messages": [{"role": m.role, "content": m.content} for m in request.messages],
               "proposer": proposer.name, "model": str(getattr(proposer, "model", "") or ""),
               "temperature": request.temperature, "seed": request.seed}
    sent = request.images if getattr(proposer, "accepts_images", False) else ()
    payload["images_sent"] = len(sent)  # every request says whether it carried a picture
    if sent:  # what was sent, not the pixels again
        per_image = getattr(proposer, "image_tokens", None)
        payload["images"] = [image_record(i, per_image) for i in sent]
    return payload


def _settle_images(proposer: Proposer, payload: dict) -> None:
    """A server that refused the pictures got the words only (the proposer resent them so): record that."""
    if payload.get("images") and not getattr(proposer, "accepts_images", False):
        refused = payload.pop("images")
        payload["images_sent"] = 0
        payload["images_left_out"] = [{**picture, "reason": "the server refused image parts; words only from then "
                                       "on for this proposer"} for picture in refused]


def ask_for_candidate(proposer: Proposer, request: ProposalRequest, *, reask: Callable[[str], str],
                      record: Recorder, max_reasks: int = 2,
                      earlier: Sequence[tuple[int, Reply]] = ()) -> AskOutcome:
    """Call ``proposer.propose`` until a reply parses, at most ``1 + max_reasks`` times.

    ``earlier``: (request id, reply) pairs recorded for this candidate by an earlier session, used in order first.
    ProposerError (and BudgetExceeded) from the proposer propagate after being recorded: the caller decides
    whether the run stops.
    """
    if max_reasks < 0:
        raise ValueError(f"max_reasks must be 0 or more, got {max_reasks}")
    replies: list[Reply] = []
    exchanges: list[Message] = []
    events: list[str] = [f"reused:{len(earlier)}"] if earlier else []
    request_ids: list[int] = []
    current = request
    for attempt in range(max_reasks + 1):
        if attempt < len(earlier):
            request_id, reply = earlier[attempt]
        else:
            payload = request_payload(proposer, current)
            try:
                reply = proposer.propose(current)
                payload["proposer"] = proposer.name  # a bandit over proposers names the one it chose
                _settle_images(proposer, payload)
            except ProposerError as exc:
                _settle_images(proposer, payload)
                record(attempt, payload, None, str(exc))
                raise
            request_id = record(attempt, payload, reply, None)
        replies.append(reply)
        request_ids.append(request_id)
        try:
            parsed = parse_reply(reply.text)
        except ReplyError as exc:
            reason = str(exc)
            if reply.finish_reason == "length":
                reason = f"the reply was cut off at the token limit before it ended ({reason}); answer shorter"
            if attempt == max_reasks:
                events.append(f"unusable:{reason}")
                error = f"no usable reply after {attempt + 1} attempt{'s' if attempt else ''}: {reason}"
                return AskOutcome(None, tuple(replies), tuple(exchanges), tuple(events), error, tuple(request_ids))
            events.append(f"reask:{reason}")
            exchanges += [Message("assistant", reply.text), Message("user", reask(reason))]
            current = replace(request, messages=request.messages + tuple(exchanges))
            continue
        events += [f"repair:{tag}" for tag in parsed.repairs]
        return AskOutcome(parsed, tuple(replies), tuple(exchanges), tuple(events), None, tuple(request_ids))
    raise AssertionError("unreachable")  # the loop always returns
