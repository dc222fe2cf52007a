"""The outer loop: propose, check for duplicates, evaluate side by side, tell the proposer, repeat.

Everything that must survive a crash goes to the archive as it happens: each reply the moment it arrives, a
proposal (status pending) before it is evaluated, a result the moment its last seed is back, each candidate's turn
of the conversation in one transaction once it has feedback. Resuming evaluates what is pending, reuses replies
already paid for, then carries on with the generation that was cut short.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from llm2.archive import Archive, CandidateRecord
from llm2.archive.ranking import baseline
from llm2.discovery import advice, behaviour, context, elites, feedback, islands, rungs
from llm2.discovery.ask import AskOutcome, ask_for_candidate
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.curve_images import image_record, images_tokens, latest_curve_images
from llm2.discovery.conversation import request_messages, scored_history, start_conversation, sync_messages
from llm2.discovery.driver import EvaluationDriver, add_proposal
from llm2.discovery.fanout import CandidateOutcome
from llm2.discovery.progress import Progress
from llm2.discovery.prompts import PromptBook
from llm2.discovery.temperature import Temperatures
from llm2.execution.base import Executor
from llm2.discovery import checkpoints, opening
from llm2.proposers.base import (BudgetExceeded, ContextTooLong, Message, ProposalRequest, Proposer, ProposerError,
                                 Reply, check_before_run)
from llm2.task_api.base import EvalSetting, Task
from llm2.task_api.optional import optional


# why a picture drawn for a request was not sent, as recorded with the request
OVER_BUDGET = "over the prompt budget: it would push out best or recent results"
REFUSED_AS_TOO_LONG = "the server refused the prompt with it as over its context"


@dataclass(frozen=True)
class RunSummary:
    status: str  # finished | stopped
    candidates: int  # proposals this run holds, baselines excluded
    evaluated: int  # of those, how many were trained and scored
    best: CandidateRecord | None
    reference: CandidateRecord | None  # the task's reference baseline as measured in the run
    fitness_name: str
    message: str | None = None


class Discovery:
    def __init__(self, config: DiscoveryConfig, task: Task, archive: Archive, proposer: Proposer,
                 executor: Executor, progress: Progress | None = None):
        self.config, self.task, self.archive = config, task, archive
        self.proposer, self.executor = proposer, executor
        self.book = PromptBook(config.prompt_dir, optional(task, "prompt_dir"))
        self.progress = progress or Progress(config.generations)
        self.setting = EvalSetting(task.settings_from_dict(config.task_settings))
        self.texts = task.texts_for(self.setting.task)
        fingerprints = config.fingerprints and optional(task, "fingerprint") is not None
        self.driver = EvaluationDriver(archive, task, executor, self.setting, config.training_seeds(),
                                       use_rungs=config.rungs, race=config.race,
                                       on_fingerprint=self._on_fingerprint if fingerprints else None,
                                       feedback=self._feedback, on_recorded=self._recorded)
        if hasattr(proposer, "bind_evidence"):  # a bandit over several proposers learns from this run's results
            proposer.bind_evidence(lambda: (archive.candidates(), getattr(self._reference(), "fitness", None)))
        if hasattr(proposer, "on_event"):
            proposer.on_event = self.progress.note
        # per proposer label: set once its server refuses a prompt as too long; a resumed run starts from the last
        # budget each learnt in earlier sessions
        self.prompt_budgets: dict[str, int] = context.learnt_budgets(archive.run_events())
        self.temperatures = Temperatures(config.temperature_schedule, config.islands, default=config.temperature)
        if hasattr(proposer, "spent_usd"):  # a resumed run's cap counts what earlier sessions spent
            proposer.spent_usd = archive.spent_usd()

    def run(self) -> RunSummary:
        self.archive.set_run_status("running")
        message = None
        try:
            check_before_run(self.proposer)  # a wrong model or key fails here, before any evaluation
            self.driver.measure_baselines(self.config.baselines)
            sync_messages(self.archive, self.book)
            start_conversation(self.archive, system=self._system_prompt(), intro=self._intro())
            self._evaluate_pending()  # left by a run that was killed
            for generation in range(self._first_open_generation(), self.config.generations + 1):
                self.progress.generation = generation
                self._migrate(generation)
                self._rewrite_advice(generation)
                for _ in range(self.config.population - self._count(generation)):
                    self._propose(generation)
                    self.driver.drain(block=False)
                self.driver.drain()
                sync_messages(self.archive, self.book)
        except BudgetExceeded as exc:
            message = f"stopped: {exc}"
        except ProposerError as exc:
            message = f"stopped: the proposer failed: {exc}"
        self.driver.drain()
        sync_messages(self.archive, self.book)
        if self.config.map_elites:  # the grid is offered proposals when parents are chosen: the last ones too
            elites.update(self.archive, self.archive.candidates(), optional(self.task, "descriptors"))
        if self.driver.rungs:
            ladder, candidates = self.driver.rungs, self.archive.candidates()
            self.archive.add_run_event("rung_correlations", {"rungs": [r.text() for r in ladder], "correlations":
                                       rungs.rung_correlations(candidates, len(ladder)),
                                       "seconds_saved": rungs.seconds_saved(candidates)})
        self.progress.close()
        status = "stopped" if message else "finished"
        self.archive.set_run_status(status, time.time())
        return self._summary(status, message)

    # --- one candidate -------------------------------------------------------------------------------------
    def _propose(self, generation: int) -> None:
        index = self.archive.next_index()
        earlier = [(r.id, _reply_of(r)) for r in self.archive.requests(index=index, unlinked=True)
                   if r.reply is not None]
        attempts = [len(self.archive.requests(index=index))]  # numbering goes on across shrunk prompts

        left_out: list[dict] = []  # the pictures drawn for this request and not sent, with why

        def record(attempt: int, payload: dict, reply: Reply | None, error: str | None) -> int:
            if left_out:
                payload = {**payload, "images_left_out": left_out}
            return self.archive.record_request(
                index=index, attempt=attempts[0] + attempt, request=payload,
                reply=None if reply is None else reply.text,
                finish_reason=None if reply is None else reply.finish_reason, error=error,
                prompt_tokens=0 if reply is None else reply.prompt_tokens,
                completion_tokens=0 if reply is None else reply.completion_tokens,
                cost_usd=0.0 if reply is None else reply.cost_usd).id

        view, parents, history, island = self.archive, (), None, 0
        chooser = self._elite_chooser(index) if self.config.map_elites else None
        if self.config.islands > 1:  # the island's own conversation and parents
            planned = islands.plan(self.archive, index, self._count(generation), self.config.islands, chooser)
            view, parents, island = islands.IslandView(self.archive, planned.island), planned.parents, planned.island
            history = islands.history(view, parents)
        elif chooser is not None:  # one conversation; its parents come from the grid's cells
            parents = chooser(self.archive.candidates())
            history = islands.history(self.archive, parents) if parents else None
        label = self.proposer.select() if hasattr(self.proposer, "select") else self.config.proposer
        temperature = self.temperatures.at(label, island, generation, self.config.generations)
        asked, refusal, messages = None, None, None
        drawn = latest_curve_images(view, self.archive, self.proposer)  # () unless this proposer takes pictures
        for _ in range(context.MAX_SHRINKS + 1):
            if messages is None:
                messages, pictures_fit = self._request_messages(view, label, () if left_out else drawn)
                if drawn and not left_out and not pictures_fit:
                    left_out[:] = self._left_out(drawn, OVER_BUDGET)
                messages = islands.with_parents_note(messages, self._parents_note(parents))
                if self.config.advice_every:
                    messages = advice.with_advice(messages, self.book, advice.in_force(advice.state(self.archive,
                                                                                                     self.book)))
            request = ProposalRequest(
                messages=messages,
                history=scored_history(self.archive) if history is None else history,
                temperature=temperature, seed=self.config.seed * 1_000_003 + index,
                images=() if left_out else drawn)
            try:
                asked = ask_for_candidate(self.proposer, request, max_reasks=self.config.max_reasks, record=record,
                                          reask=lambda reason: self.book.render("reask", reason=reason),
                                          earlier=earlier)
                break
            except ContextTooLong as exc:  # recorded by ask_for_candidate; ask again with a smaller prompt
                refusal = exc
                attempts[0] = len(self.archive.requests(index=index))
                pictures = request.images if getattr(self.proposer, "accepts_images", False) else ()
                self._shrink_prompt(label, request.messages, pictures, exc)
                if pictures:  # the picture goes first: the same words again, without it
                    left_out[:] = self._left_out(pictures, REFUSED_AS_TOO_LONG)
                else:
                    messages = None
        if asked is None:
            error = f"no prompt small enough for the proposer's context: {refusal}"
            asked = AskOutcome(None, (), (), (f"unusable:{error}",), error, ())
        common = dict(generation=generation, proposer=self.proposer.name, request_ids=asked.request_ids,
                      prompt_tokens=sum(r.prompt_tokens for r in asked.replies),
                      completion_tokens=sum(r.completion_tokens for r in asked.replies),
                      cost_usd=sum(r.cost_usd for r in asked.replies), reply_events=asked.events)
        if asked.parsed is None:
            record_ = self.archive.add_candidate(
                thought="", name="unusable_reply", code="", status="invalid", stage="reply", error=asked.error,
                feedback=feedback.feedback_rejected(self.book, status="invalid", stage="reply", error=asked.error),
                **common)
        else:
            parsed = asked.parsed
            record_ = add_proposal(self.archive, thought=parsed.thought, name=parsed.name, code=parsed.code, **common)
            if record_.status == "pending":
                self.driver.submit(record_)
            else:
                self._tell_duplicate(record_)
        if record_.status != "pending":
            self.progress.record(status=record_.status, name=record_.name, fitness=None, seconds=0.0, evals=0)

    def _request_messages(self, view, label: str, images: tuple) -> tuple[tuple[Message, ...], bool]:
        """The words of the next request, and whether ``images`` fit beside them in the prompt budget."""
        budget = self._prompt_budget(label)
        if budget is None:
            return request_messages(view, self.config, self.book, self.task.metrics_text), True
        cost = images_tokens(images, self._per_image())
        return context.fit_prompt(view, self.config, self.book, self.task.metrics_text, budget, cost)

    def _elite_chooser(self, index: int):
        """Parents for proposal ``index``: elites of distinct occupied cells (discovery/elites.py)."""
        grid = elites.update(self.archive, self.archive.candidates(), optional(self.task, "descriptors"))
        return lambda candidates: elites.choose_parents(grid, candidates, islands.PARENTS,
                                                        seed=self.config.seed * 1_000_003 + index)

    def _parents_note(self, parents: tuple[CandidateRecord, ...]) -> str:
        if not parents:
            return ""
        entries = "\n".join(f"- {c.name}: fitness {feedback.fmt(c.fitness, c.fitness_std)}" for c in parents)
        return self.book.render("parents", entries=entries)

    def _rewrite_advice(self, generation: int) -> None:
        said = advice.step(self.archive, self.book, self.proposer, generation, self.config.advice_every,
                           getattr(self._reference(), "fitness", None), self.config.seed * 1_000_003 - generation)
        if said:
            self.progress.note(said)

    def _migrate(self, generation: int) -> None:
        step = islands.migrate_if_due(self.archive, generation, self.config.islands, self.config.migrate_every)
        if step is not None:
            self.progress.note(f"islands: {len(step['moves'])} candidates moved"
                               + (f", island {step['reset']} reset to the others' best" if step["reset"] is not None
                                  else ""))

    def _prompt_budget(self, label: str) -> int | None:
        """Tokens the prompt to proposer ``label`` may take: a budget learnt from its refusal, else its own given
        context, the run's (``--context-tokens``) or its server's reported one, less the reply's room; None:
        unbounded."""
        if label in self.prompt_budgets:
            return self.prompt_budgets[label]
        tokens = (getattr(self.proposer, "own_context_tokens", None) or self.config.context_tokens
                  or getattr(self.proposer, "context_tokens", None))
        return None if tokens is None else tokens - context.reply_room(tokens, self._max_tokens())

    def _shrink_prompt(self, label: str, sent: tuple[Message, ...], pictures: tuple, refusal: ContextTooLong) -> None:
        cost = images_tokens(pictures, self._per_image())
        budget = context.shrunk_budget(sent, refusal, self._max_tokens(), cost)
        self.prompt_budgets[label] = budget
        self.archive.add_run_event("prompt_shrunk", {"budget_tokens": budget, "refusal": str(refusal),
                                                     "proposer": label, "image_tokens": cost})
        self.progress.note(f"the prompt was over the proposer's context; shrunk to about {budget} tokens"
                           + (", the picture left out" if pictures else ""))

    def _max_tokens(self) -> int | None:
        return getattr(self.proposer, "max_tokens", None)

    def _left_out(self, pictures: tuple, reason: str) -> list[dict]:
        return [{**image_record(picture, self._per_image()), "reason": reason} for picture in pictures]

    def _per_image(self) -> int | None:
        """The tokens the proposer's server counts for one picture, where it says; None: the pixel-size estimate."""
        return getattr(self.proposer, "image_tokens", None)

    def _feedback(self, candidate: CandidateRecord, outcome: CandidateOutcome) -> str | None:
        """What the proposer is told of its candidate's result (nothing of a baseline's)."""
        if candidate.generation == 0:
            return None
        if outcome.stage == "rung":
            text = feedback.feedback_rung(self.book, outcome.metrics["promotions"][-1],
                                          self.task.metrics_text(outcome.metrics))
        elif outcome.status == "ok":
            text = self._feedback_ok(outcome)
        else:
            text = feedback.feedback_rejected(self.book, status=outcome.status, stage=outcome.stage,
                                              error=outcome.error)
        return feedback.with_curves(self.book, text, self._curves_text(outcome))

    def _recorded(self, candidate: CandidateRecord, outcome: CandidateOutcome, status: str) -> None:
        self.progress.record(status=status, name=candidate.name, fitness=outcome.fitness, seconds=outcome.seconds,
                             evals=len(outcome.metrics.get("fitness_per_seed") or self.config.training_seeds()),
                             proposal=candidate.generation > 0)
        self._prune_checkpoints()
        for duplicate in self.archive.candidates(status="duplicate"):
            if duplicate.duplicate_of == candidate.id and duplicate.feedback is None:
                self._tell_duplicate(duplicate)

    def _curves_text(self, outcome: CandidateOutcome) -> str:
        """What the first seed's training curves show, in the task's own words ("" when it has none)."""
        describe = optional(self.task, "curves_text")
        first = outcome.curves[0] if outcome.curves else {}
        return describe(first) if describe is not None and first else ""

    def _prune_checkpoints(self) -> None:
        """With keep_checkpoints N: keep the weights of the N best candidates (trained with the first seed) and of
        those still being evaluated; remove every other weights file the executor kept."""
        if not self.config.keep_checkpoints:
            return
        seed = self.config.training_seeds()[0]
        wanted = self.archive.best(self.config.keep_checkpoints) + self.archive.pending()
        checkpoints.prune(self.archive.path.parent, [(c.id, seed) for c in wanted])

    def _on_fingerprint(self, candidate_id: int, vector: tuple[float, ...]) -> bool:
        """True: evaluate the candidate; False: it behaves like an earlier one and is recorded as its duplicate."""
        candidate = self.archive.candidate(candidate_id)
        tolerance = optional(self.task, "fingerprint_tolerance")
        if behaviour.settle_fingerprint(self.archive, candidate, tuple(vector), tolerance) is None:
            return True
        self.progress.record(status="duplicate", name=candidate.name, fitness=None, seconds=0.0, evals=0,
                             behavioural=True)
        self._tell_duplicate(self.archive.candidate(candidate_id))
        return False

    def _tell_duplicate(self, duplicate: CandidateRecord) -> None:
        """A duplicate learns its original's score once that is known; a behavioural one is also given it."""
        original = self.archive.candidate(duplicate.duplicate_of)
        if original.status == "pending":
            return
        if behaviour.is_behaviour_duplicate(self.archive, duplicate.id):
            self.archive.mark_duplicate(duplicate.id, original.id, fitness=original.fitness,
                                        fitness_std=original.fitness_std, metrics=original.metrics)
            self.archive.set_feedback(duplicate.id, feedback.feedback_behaviour(
                self.book, original_name=original.name, original_fitness=original.fitness,
                why=optional(self.task, "fingerprint_note")))
        else:
            self.archive.set_feedback(duplicate.id, feedback.feedback_duplicate(
                self.book, original_name=original.name, original_fitness=original.fitness))

    def _feedback_ok(self, outcome: CandidateOutcome) -> str:
        best = self.archive.best(1, include_baselines=True)
        best_name, best_fitness = (best[0].name, best[0].fitness) if best else ("-", outcome.fitness)
        if outcome.fitness is not None and outcome.fitness > (best_fitness or float("-inf")):
            best_name, best_fitness = "this one", outcome.fitness
        reference = self._reference()
        return feedback.feedback_ok(self.book, fitness=outcome.fitness, fitness_std=outcome.fitness_std,
                                    metrics_text=self.task.metrics_text(outcome.metrics), n_seeds=self.config.seeds,
                                    reference_name=self.task.reference_baseline,
                                    reference_fitness=reference.fitness if reference else None,
                                    best_name=best_name, best_fitness=best_fitness)

    # --- run set-up and resume -----------------------------------------------------------------------------
    def _evaluate_pending(self) -> None:
        self.driver.evaluate_pending()
        sync_messages(self.archive, self.book)

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
        return opening.system_prompt(self.book, self.task, self.setting.task)

    def _intro(self) -> str:
        baselines = [c for c in self.archive.candidates() if c.generation == 0]
        return opening.intro(self.book, self.task, self.setting.task, baselines, self.config.seeds)

    # --- lookups -------------------------------------------------------------------------------------------
    def _reference(self) -> CandidateRecord | None:
        return baseline(self.archive.candidates(), self.task.reference_baseline)

    def _summary(self, status: str, message: str | None) -> RunSummary:
        proposals = [c for c in self.archive.candidates() if c.generation > 0]
        evaluated = sum(1 for c in proposals if c.status in ("ok", "failed", "timeout") or c.stage in
                        ("contract", "probe", "train", "score", "done"))
        best = self.archive.best(1)
        return RunSummary(status, len(proposals), evaluated, best[0] if best else None, self._reference(),
                          self.texts.fitness_name, message)


def _reply_of(record) -> Reply:
    return Reply(record.reply or "", record.prompt_tokens, record.completion_tokens, record.cost_usd,
                 str(record.request.get("model", "")), record.finish_reason or "")
