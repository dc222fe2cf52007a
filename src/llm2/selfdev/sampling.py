"""Sampling one iteration into the archive: each completion is recorded the moment its batch is written (the exact
request in the requests table, then the candidate), so a killed run loses no sample and asks again only for the
slots it never recorded.

Slot s of iteration k belongs to batch s // sample_batch, generated with a seed of its own: a batch cut short is
generated again whole, and only its missing slots are recorded.
"""

from __future__ import annotations

from collections.abc import Callable

from llm2.archive import Archive, CandidateRecord
from llm2.discovery.driver import add_proposal
from llm2.selfdev.factory import Factory, Sample
from llm2.selfdev.plan import SelfDevPlan
from llm2.selfdev.prompting import FactoryPrompt
from llm2.selfdev.reading import read_completion

PROPOSER_NAME = "factory"


def generation_of(iteration: int) -> int:
    """The archive's generation of an iteration's samples: generation 0 holds the run's baselines."""
    return iteration + 1


def batch_seed(seed: int, iteration: int, batch: int) -> int:
    return seed * 1_000_003 + iteration * 10_007 + batch


def recorded_slots(archive: Archive, iteration: int) -> dict[int, int]:
    """slot -> candidate id, for the samples of ``iteration`` already in the archive."""
    return {int(r.request["slot"]): r.candidate_id for r in archive.requests()
            if r.candidate_id is not None and r.request.get("iteration") == iteration and "slot" in r.request}


def sample_iteration(archive: Archive, factory: Factory, prompt: FactoryPrompt, plan: SelfDevPlan, iteration: int,
                     on_recorded: Callable[[CandidateRecord], None]) -> None:
    """Record every missing sample of ``iteration``; ``on_recorded`` gets each new candidate (pending ones are to be
    evaluated)."""
    taken = recorded_slots(archive, iteration)
    for record in archive.requests(unlinked=True):  # replies a killed session received but never made candidates
        if record.request.get("iteration") == iteration and record.reply is not None:
            slot = int(record.request["slot"])
            if slot not in taken:
                candidate = _add_candidate(archive, iteration, slot, plan.temperature(iteration), record.reply,
                                           record.prompt_tokens, record.completion_tokens, record.id)
                taken[slot] = candidate.id
                on_recorded(candidate)
    missing = [slot for slot in range(plan.samples) if slot not in taken]
    for batch in sorted({slot // plan.sample_batch for slot in missing}):
        first = batch * plan.sample_batch
        size = min(plan.sample_batch, plan.samples - first)
        seed = batch_seed(plan.seed, iteration, batch)
        samples = factory.sample(prompt, size, plan.temperature(iteration), seed, plan.max_new_tokens)
        for offset, sample in enumerate(samples):
            slot = first + offset
            if slot in taken:
                continue
            request_id = _record_request(archive, factory, prompt, plan, iteration, slot, seed, sample)
            candidate = _add_candidate(archive, iteration, slot, plan.temperature(iteration), sample.text,
                                       sample.prompt_tokens, sample.completion_tokens, request_id)
            on_recorded(candidate)


def _record_request(archive: Archive, factory: Factory, prompt: FactoryPrompt, plan: SelfDevPlan, iteration: int,
                    slot: int, seed: int, sample: Sample) -> int:
    payload = {**prompt.as_dict(), "proposer": PROPOSER_NAME, "model": factory.label,
               "temperature": plan.temperature(iteration), "seed": seed, "iteration": iteration, "slot": slot,
               "batch_size": plan.sample_batch, "max_new_tokens": plan.max_new_tokens}
    return archive.record_request(index=archive.next_index(), attempt=0, request=payload, reply=sample.text,
                                  finish_reason=sample.finish_reason, prompt_tokens=sample.prompt_tokens,
                                  completion_tokens=sample.completion_tokens).id


def _add_candidate(archive: Archive, iteration: int, slot: int, temperature: float, text: str, prompt_tokens: int,
                   completion_tokens: int, request_id: int) -> CandidateRecord:
    read = read_completion(text)
    common = dict(generation=generation_of(iteration), proposer=PROPOSER_NAME, prompt_tokens=prompt_tokens,
                  completion_tokens=completion_tokens, request_ids=[request_id])
    thought = read.thought or f"written by the factory at iteration {iteration} (temperature {temperature:g})"
    if not read.code:
        return archive.add_candidate(thought=thought, name=f"unusable_i{iteration}_{slot:03d}", code="",
                                     status="invalid", stage="reply", error=read.error, **common)
    return add_proposal(archive, thought=thought, name=f"{read.name}_i{iteration}_{slot:03d}", code=read.code,
                        **common)
