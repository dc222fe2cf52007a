"""The self-develop loop: per iteration, the factory writes algorithms, they are evaluated like any candidate, the
factory is trained on pairs from its own results, and the refined factory writes the next iteration's.

Steps and where their results live (a killed run resumes at the first step whose result is missing):

    baselines       the task's discovery baselines, generation 0 of the archive (measured once)
    factory K       DIR/selfdev/iteration-K/factory (K = 0: the seed factory; K > 0: trained on K-1's pairs)
    samples of K    the archive: a request and a candidate per sample, generation K + 1, recorded as written
    evaluation      the archive: each candidate finished the moment its last seed is back
    statistics      DIR/selfdev/iteration-K/{samples.jsonl, pairs.jsonl, stats.json} (stats.json last)

Nothing finished is done again: evaluated candidates are never submitted again, recorded samples are never asked
for again, and a DPO step cut short is run again from its factory and pairs (a whole directory appears only when
complete).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from llm2.archive import Archive, CandidateRecord
from llm2.archive.ranking import baseline
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.driver import EvaluationDriver
from llm2.selfdev.factory import DEFAULT, Factory, seed_checkpoint
from llm2.numbers import decimal_text
from llm2.files import partial_dir, read_json, read_jsonl, replace_dir, write_json, write_jsonl
from llm2.selfdev_files import RunFiles
from llm2.selfdev.outcomes import IterationStats, build_pairs, iteration_outcomes, iteration_stats
from llm2.selfdev.plan import SelfDevPlan
from llm2.selfdev.prompting import FactoryPrompt, discovery_messages
from llm2.selfdev.sampling import generation_of, sample_iteration
from llm2.task_api.base import EvalSetting

EVENT = "selfdev"  # the kind of the run events this loop records


@dataclass(frozen=True)
class SelfDevSummary:
    status: str  # finished | stopped
    iterations: tuple[IterationStats, ...]
    best: CandidateRecord | None  # the best algorithm of the whole run
    reference: CandidateRecord | None
    fitness_name: str


class SelfDevelopment:
    def __init__(self, plan: SelfDevPlan, config: DiscoveryConfig, task, archive: Archive, executor,
                 files: RunFiles, echo: Callable[[str], None] = lambda line: None):
        self.plan, self.config, self.task, self.archive, self.files = plan, config, task, archive, files
        self.echo = echo
        self.settings = task.settings_from_dict(config.task_settings)
        # The discovery's driver, with nothing told back: the factory learns from its pairs, not from feedback.
        self.driver = EvaluationDriver(archive, task, executor, EvalSetting(self.settings), config.training_seeds())

    def run(self) -> SelfDevSummary:
        self.archive.set_run_status("running")
        self.driver.measure_baselines(self.config.baselines)
        self.driver.evaluate_pending()  # what a killed session left pending
        for k in range(self.plan.iterations + 1):
            source = self._factory(k)
            if not self.files.stats(k).is_file():
                self._iteration(k, source)
        self.archive.set_run_status("finished", time.time())
        return self.summary("finished")

    # --- one iteration -------------------------------------------------------------------------------------------
    def _iteration(self, k: int, source) -> None:
        started = time.perf_counter()
        factory = Factory.load(source)
        prompt = self._prompt(factory)
        sample_iteration(self.archive, factory, prompt, self.plan, k, self._submit)
        factory.release()
        sampled = time.perf_counter()
        self.driver.evaluate_pending()
        outcomes = iteration_outcomes(self.archive, generation_of(k))
        pairs = build_pairs(outcomes, self.plan.chosen_top, self.plan.rejected_bottom, self.plan.rejected_pool,
                            self.plan.recipe.max_pairs)
        stats = iteration_stats(k, self.plan.temperature(k), outcomes, self._reference(), pairs)
        write_jsonl(self.files.samples(k), (o.as_dict() for o in outcomes))
        write_jsonl(self.files.pairs(k), (
            {"prompt": prompt.as_dict(), "chosen": good.completion, "rejected": bad.completion,
             "chosen_candidate": good.candidate_id, "rejected_candidate": bad.candidate_id,
             "chosen_fitness": good.fitness, "rejected_fitness": bad.fitness} for good, bad in pairs.pairs))
        timing = {"sampling_seconds": round(sampled - started, 2),
                  "evaluation_seconds": round(time.perf_counter() - sampled, 2)}
        write_json(self.files.stats(k), {**stats.as_dict(), **timing})  # last: the iteration is done
        # the statistics themselves live in stats.json alone; the event marks when the iteration ended
        self.archive.add_run_event(EVENT, {"step": "iteration", "iteration": k, **timing})
        self.echo(describe(stats))

    def _factory(self, k: int):
        """Iteration k's factory directory, made now when missing (k = 0: the seed factory; else trained)."""
        target = self.files.factory(k)
        if target.is_dir():
            return target
        if k > 0 and not self.plan.refine:
            return self._factory(0)  # the control run samples the seed factory throughout
        if k == 0:
            partial = partial_dir(target)
            if partial.exists():
                shutil.rmtree(partial)
            self._seed_factory(partial)
            replace_dir(partial, target)
            return target
        return self._train(k)

    def _seed_factory(self, directory) -> None:
        if self.plan.factory == DEFAULT:
            from llm2.selfdev.default_factory import TinyFactoryConfig, cache_path, materialize

            config = TinyFactoryConfig(**self.plan.factory_config)
            if not cache_path(self.task, config).exists():
                self.echo(f"building the offline default factory of {self.task.name} (once; it is cached)")
            materialize(self.task, config, directory)
        else:
            seed_checkpoint(self.plan.factory, directory)

    def _train(self, k: int):
        from llm2.selfdev.training import train_factory

        source, target = self._factory(k - 1), self.files.factory(k)
        rows = read_jsonl(self.files.pairs(k - 1))
        if not rows:
            self.echo(f"iteration {k - 1} gave no preference pair: the factory goes on unchanged")
            partial = partial_dir(target)
            if partial.exists():
                shutil.rmtree(partial)
            shutil.copytree(source, partial)  # adapters are referred to relatively, from the same depth
            replace_dir(partial, target)
            return target
        prompt = FactoryPrompt.from_dict(rows[0]["prompt"])
        self.archive.add_run_event(EVENT, {"step": "training", "iteration": k - 1, "pairs": len(rows)})
        scratch = self.files.iteration(k) / ".trainer"
        result = train_factory(source, prompt, [(r["chosen"], r["rejected"]) for r in rows], self.plan.recipe,
                               self.plan.seed * 1_000 + k, target, self.files.adapter(k), scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        self.archive.add_run_event(EVENT, {"step": "trained", "iteration": k - 1, "pairs": result.pairs,
                                           "steps": result.steps, "seconds": result.seconds,
                                           "tuning": result.recipe.tuning, "objective": result.recipe.objective,
                                           "last_loss": result.last_loss, "reward_margin": result.reward_margin})
        self.echo(f"factory {k}: trained on {result.pairs} pairs of iteration {k - 1} ({result.recipe.tuning}"
                  f"{', objective ' + result.recipe.objective if result.recipe.objective else ', DPO'}, "
                  f"{result.steps} steps, {result.seconds:.1f} s, loss {_num(result.first_loss)} -> "
                  f"{_num(result.last_loss)})")
        return target

    def _prompt(self, factory: Factory) -> FactoryPrompt:
        """The run's one prompt: fixed at the first sample, read back on resume (the baselines' text stays)."""
        if self.files.prompt.is_file():
            return FactoryPrompt.from_dict(read_json(self.files.prompt))
        messages = ()
        if factory.asks_with_messages:
            baselines = [c for c in self.archive.candidates() if c.generation == 0 and c.is_baseline]
            messages = discovery_messages(self.task, self.settings, baselines, self.config.seeds)
        prompt = factory.prompt_for(messages)
        write_json(self.files.prompt, prompt.as_dict())
        return prompt

    def _submit(self, candidate: CandidateRecord) -> None:
        """Evaluation starts as soon as a sample is recorded, while the factory writes the rest."""
        self.driver.submit(candidate)
        self.driver.drain(block=False)

    # --- results -------------------------------------------------------------------------------------------------
    def _reference(self) -> CandidateRecord | None:
        return baseline(self.archive.candidates(), self.task.reference_baseline)

    def summary(self, status: str) -> SelfDevSummary:
        done = tuple(IterationStats(**{k: v for k, v in read_json(self.files.stats(k)).items()
                                       if k in IterationStats.__dataclass_fields__})
                     for k in self.files.iterations_done())
        best = self.archive.best(1)
        return SelfDevSummary(status, done, best[0] if best else None, self._reference(),
                              self.task.texts_for(self.settings).fitness_name)


def describe(stats: IterationStats) -> str:
    """One line per iteration for the terminal."""
    return (f"iteration {stats.iteration} (temperature {stats.temperature:g}): {stats.valid}/{stats.samples} valid "
            f"({stats.valid_share:.0%}), fitness mean {_num(stats.mean)}, median {_num(stats.median)}, top decile "
            f"{_num(stats.top_decile)}, best {_num(stats.best_fitness)} ({stats.best_name or '-'}); "
            f"{stats.pairs} pairs from {stats.chosen} chosen × {stats.rejected} rejected")


def _num(value: float | None) -> str:
    return decimal_text(value, missing="-")
