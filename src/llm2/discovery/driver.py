"""The one evaluation driver: a proposal recorded → evaluated over the training seeds (rungs and fingerprints where
the run asks for them) → its outcome and curves recorded → the caller's feedback and follow-up.

`discover` (discovery/loop.py) and `self-develop` (selfdev/develop.py) both hand their proposals to it; they differ
only in how proposals are written (a conversation, a factory model) and in what they tell or do once a result is in
(the ``feedback`` and ``on_recorded`` hooks). `heldout` and `evaluate` fan out through the same SeedFanout
(``fanout.fan_out``) but record nothing as a candidate.
"""

from __future__ import annotations

from typing import Callable, Sequence

from llm2.archive import Archive, CandidateRecord, normalized_code_hash
from llm2.archive.search_tables import record_curves
from llm2.discovery import rungs
from llm2.discovery.fanout import CandidateOutcome, FingerprintJudge, SeedFanout, record_outcome
from llm2.discovery.opening import add_missing_baselines, reference_probes
from llm2.execution.base import Executor
from llm2.task_api.base import EvalSetting, Task
from llm2.task_api.optional import optional

# feedback(candidate, outcome) -> the text the proposer is told (None: nothing is told)
Feedback = Callable[[CandidateRecord, CandidateOutcome], "str | None"]
# on_recorded(candidate, outcome, status): what the caller does once the outcome is in the archive
OnRecorded = Callable[[CandidateRecord, CandidateOutcome, str], None]


def add_proposal(archive: Archive, *, code: str, **fields) -> CandidateRecord:
    """Record a proposal with code: pending, or a duplicate of the earlier candidate with the same normalized code."""
    original = archive.find_by_hash(normalized_code_hash(code))
    return archive.add_candidate(code=code, status="duplicate" if original else "pending",
                                 duplicate_of=original.id if original else None, **fields)


class EvaluationDriver:
    def __init__(self, archive: Archive, task: Task, executor: Executor, setting: EvalSetting, seeds: list[int],
                 use_rungs: bool = False, race: bool = False, on_fingerprint: FingerprintJudge | None = None,
                 feedback: Feedback | None = None, on_recorded: OnRecorded | None = None):
        self.archive, self.task, self.seeds = archive, task, seeds
        self.feedback, self.on_recorded = feedback, on_recorded
        self.fanout = SeedFanout(executor, setting, seeds, on_fingerprint=on_fingerprint)
        task_rungs = optional(task, "fidelity_rungs") if use_rungs else ()
        race = race and len(seeds) > 1  # seed racing: the first seed, then the others only if it could be the best
        self.rungs = rungs.ladder_of(task_rungs, len(seeds), race) if task_rungs or race else []
        # a promoted candidate trains on from its rung's cut where the task's training can pause and the executor
        # answers pauses in this process; elsewhere it is trained again
        pausable = optional(task, "can_pause")(setting.task) and getattr(executor, "answers_pauses", False)
        self.evaluator = rungs.Ladder(self.fanout, seeds, self.rungs, pausable=pausable) if self.rungs else self.fanout
        if self.rungs:  # a resumed run judges its next rungs on the evidence its earlier sessions gathered
            self.evaluator.learn(archive.candidates())

    def submit(self, candidate: CandidateRecord) -> None:
        """Start evaluating a pending candidate (once: a candidate already under way is left to finish)."""
        if candidate.status != "pending" or candidate.id in self.evaluator:
            return
        if self.rungs:  # baselines climb every rung: they are the yardstick of each
            self.evaluator.submit(candidate.id, candidate.code, always_promote=candidate.generation == 0)
        else:
            self.evaluator.submit(candidate.id, candidate.code)

    def drain(self, block: bool = True) -> None:
        """Record what has finished; ``block``: wait for everything submitted."""
        self.evaluator.drain(self._finish, block=block)

    def measure_baselines(self, names: Sequence[str]) -> None:
        """The task's baselines, generation 0, evaluated once per run; then the reference's probes are the
        yardstick of every later probe."""
        add_missing_baselines(self.archive, self.task, names)
        self.evaluate_pending(generation=0)
        self.fanout.baseline_probe = reference_probes(self.archive, self.task, self.seeds)

    def evaluate_pending(self, generation: int | None = None) -> None:
        """Evaluate every pending candidate (of ``generation``), to the end: what a killed session left."""
        for candidate in self.archive.pending():
            if generation is None or candidate.generation == generation:
                self.submit(candidate)
        self.drain()

    def _finish(self, candidate_id: int, outcome: CandidateOutcome) -> None:
        candidate = self.archive.candidate(candidate_id)
        text = self.feedback(candidate, outcome) if self.feedback is not None else None
        for seed, curves in zip(self.seeds, outcome.curves):
            if curves:
                record_curves(self.archive, candidate_id, seed, curves)
        status = record_outcome(self.archive, candidate, outcome, text)
        if self.on_recorded is not None:
            self.on_recorded(candidate, outcome, status)
