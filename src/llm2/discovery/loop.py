"""The outer loop: propose, check for duplicates, evaluate side by side, tell the proposer, repeat.

Everything that must survive a crash goes to the archive as it happens: a proposal is stored (status pending)
before it is evaluated, and a result the moment its last seed is back. Resuming evaluates what is pending, then
carries on with the generation that was cut short.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from llm2.archive import Archive, CandidateRecord, normalized_code_hash
from llm2.discovery import feedback
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.conversation import request_messages, scored_history, start_conversation, sync_messages
from llm2.discovery.evaluations import CandidateOutcome, SeedFanout
from llm2.discovery.progress import Progress
from llm2.discovery.prompts import PromptBook
from llm2.discovery.ask import ask_for_candidate
from llm2.execution.base import Executor
from llm2.proposers.base import BudgetExceeded, Message, ProposalRequest, Proposer, ProposerError
from llm2.tasks.base import EvalSetting, Task


@dataclass(frozen=True)
class RunSummary:
    status: str  # finished | stopped
    candidates: int  # proposals this run holds, baselines excluded
    evaluated: int  # of those, how many were trained and scored
    best: CandidateRecord | None
    dpo: CandidateRecord | None
    message: str | None = None


class Discovery:
    def __init__(self, config: DiscoveryConfig, task: Task, archive: Archive, proposer: Proposer,
                 executor: Executor, progress: Progress | None = None):
        self.config, self.task, self.archive = config, task, archive
        self.proposer, self.executor = proposer, executor
        self.book = PromptBook(config.prompt_dir)
        self.progress = progress or Progress(config.generations)
        self.setting = EvalSetting(beta=config.beta, world_seed=config.world_seed)
        self.fanout = SeedFanout(executor, self.setting, config.training_seeds())
        self.exchanges: dict[int, list[Message]] = {}  # re-asks of candidates whose messages are not logged yet

    def run(self) -> RunSummary:
        self.archive.set_run_status("running")
        self._measure_baselines()
        start_conversation(self.archive, self.book, system=self._system_prompt(), intro=self._intro())
        self._evaluate_pending()  # left by a run that was killed
        message = None
        try:
            for generation in range(self._first_open_generation(), self.config.generations + 1):
                self.progress.generation = generation
                for _ in range(self.config.population - self._count(generation)):
                    self._propose(generation)
                    self.fanout.drain(self._finish, block=False)
                self.fanout.drain(self._finish)
                self._close_generation()
        except BudgetExceeded as exc:
            message = f"stopped: {exc}"
        except ProposerError as exc:
            message = f"stopped: the proposer failed: {exc}"
        self.fanout.drain(self._finish)
        self._close_generation()
        self.progress.close()
        status = "stopped" if message else "finished"
        self.archive.set_run_status(status, time.time())
        return self._summary(status, message)

    # --- one candidate -------------------------------------------------------------------------------------
    def _propose(self, generation: int) -> None:
        index = len(self.archive.candidates())
        request = ProposalRequest(messages=request_messages(self.archive, self.config, self.book),
                                  history=scored_history(self.archive), temperature=self.config.temperature,
                                  seed=self.config.seed * 1_000_003 + index)
        asked = ask_for_candidate(self.proposer, request, max_reasks=self.config.max_reasks,
                                  reask=lambda reason: self.book.render("reask", reason=reason))
        usage = dict(prompt_tokens=sum(r.prompt_tokens for r in asked.replies),
                     completion_tokens=sum(r.completion_tokens for r in asked.replies),
                     cost_usd=sum(r.cost_usd for r in asked.replies), reply_events=asked.events)
        common = dict(generation=generation, proposer=self.proposer.name, **usage)
        if asked.parsed is None:
            record = self.archive.add_candidate(thought="", name="unusable_reply", code="", status="invalid",
                                                stage="reply", error=asked.error, **common)
            self.archive.set_feedback(record.id, feedback.feedback_rejected(
                self.book, status="invalid", stage="reply", error=asked.error))
        else:
            parsed = asked.parsed
            original = self.archive.find_by_hash(normalized_code_hash(parsed.code))
            record = self.archive.add_candidate(
                thought=parsed.thought, name=parsed.name, code=parsed.code, **common,
                status="duplicate" if original else "pending", duplicate_of=original.id if original else None)
            if original is None:
                self.fanout.submit(record.id, record.code)
        self.exchanges[record.id] = list(asked.exchanges)
        if asked.parsed is None:  # an unusable last reply is logged as it came; a usable one as clean JSON
            self.exchanges[record.id].append(Message("assistant", asked.replies[-1].text))
        if record.status != "pending":
            self.progress.record(status=record.status, name=record.name, fitness=None, seconds=0.0, evals=0)

    def _finish(self, candidate_id: int, outcome: CandidateOutcome) -> None:
        candidate = self._candidate(candidate_id)
        status = "baseline" if candidate.generation == 0 and outcome.status == "ok" else outcome.status
        text = None
        if candidate.generation > 0:
            text = self._feedback_ok(outcome) if outcome.status == "ok" else feedback.feedback_rejected(
                self.book, status=outcome.status, stage=outcome.stage, error=outcome.error)
        self.archive.finish_candidate(candidate_id, status=status, stage=outcome.stage, error=outcome.error,
                                      fitness=outcome.fitness, fitness_std=outcome.fitness_std, kl=outcome.kl,
                                      metrics=outcome.metrics, seconds=outcome.seconds, feedback=text)
        self.progress.record(status=status, name=candidate.name, fitness=outcome.fitness, seconds=outcome.seconds,
                             evals=len(self.config.training_seeds()))

    def _feedback_ok(self, outcome: CandidateOutcome) -> str:
        best = self.archive.best(1, include_baselines=True)
        best_name, best_fitness = (best[0].name, best[0].fitness) if best else ("-", outcome.fitness)
        if outcome.fitness is not None and outcome.fitness > (best_fitness or float("-inf")):
            best_name, best_fitness = "this one", outcome.fitness
        dpo = self._baseline("dpo")
        return feedback.feedback_ok(self.book, fitness=outcome.fitness, fitness_std=outcome.fitness_std,
                                    kl=outcome.kl, n_seeds=self.config.seeds,
                                    dpo_fitness=dpo.fitness if dpo else None,
                                    best_name=best_name, best_fitness=best_fitness)

    def _close_generation(self) -> None:
        """Duplicates learn their original's score once it is known; then the finished candidates are logged."""
        for candidate in self.archive.candidates(status="duplicate"):
            if candidate.feedback is None:
                original = self._candidate(candidate.duplicate_of)
                if original.status != "pending":
                    self.archive.set_feedback(candidate.id, feedback.feedback_duplicate(
                        self.book, original_name=original.name, original_fitness=original.fitness))
        sync_messages(self.archive, self.exchanges)
        self.exchanges = {k: v for k, v in self.exchanges.items() if self._candidate(k).feedback is None}

    # --- run set-up and resume -----------------------------------------------------------------------------
    def _measure_baselines(self) -> None:
        from llm2.objectives import OBJECTIVES

        measured = {c.name for c in self.archive.candidates() if c.generation == 0}
        for name in self.config.baselines:
            if name not in measured:
                objective = OBJECTIVES[name]
                self.archive.add_candidate(generation=0, proposer="catalog", thought=objective.formula,
                                           name=name, code=objective.code)
        self._evaluate_pending(generation=0)

    def _evaluate_pending(self, generation: int | None = None) -> None:
        for candidate in self.archive.pending():
            if generation is None or candidate.generation == generation:
                self.fanout.submit(candidate.id, candidate.code)
        self.fanout.drain(self._finish)
        self._close_generation()

    def _first_open_generation(self) -> int:
        proposed = [c.generation for c in self.archive.candidates() if c.generation > 0]
        if not proposed:
            return 1
        last = max(proposed)
        return last if self._count(last) < self.config.population else last + 1

    def _count(self, generation: int) -> int:
        return sum(1 for c in self.archive.candidates() if c.generation == generation)

    # --- text ----------------------------------------------------------------------------------------------
    def _system_prompt(self) -> str:
        return self.book.render("system", task_kind=self.task.kind,
                                contract=self.task.contract.description)

    def _intro(self) -> str:
        reference = self.task.reference_metrics(self.setting)
        baselines = "\n\n".join(
            self.book.render("baseline", name=c.name, fitness=feedback.fmt(c.fitness, c.fitness_std),
                             kl=feedback.fmt(c.kl), code=c.code.strip())
            for c in self.archive.candidates() if c.generation == 0
        )
        return self.book.render(
            "intro", task_description=self.task.description, fitness_description=self.task.fitness_description,
            beta=self.config.beta, n_seeds=self.config.seeds, reference_fitness=feedback.fmt(reference.fitness),
            baselines=baselines)

    # --- lookups -------------------------------------------------------------------------------------------
    def _candidate(self, candidate_id: int) -> CandidateRecord:
        return self.archive.candidate(candidate_id)

    def _baseline(self, name: str) -> CandidateRecord | None:
        return next((c for c in self.archive.candidates() if c.generation == 0 and c.name == name), None)

    def _summary(self, status: str, message: str | None) -> RunSummary:
        proposals = [c for c in self.archive.candidates() if c.generation > 0]
        evaluated = sum(1 for c in proposals if c.status in ("ok", "failed", "timeout") or c.stage in
                        ("contract", "probe", "train", "score", "done"))
        best = self.archive.best(1)
        return RunSummary(status, len(proposals), evaluated, best[0] if best else None, self._baseline("dpo"),
                          message)
