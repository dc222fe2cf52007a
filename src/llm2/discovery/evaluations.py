"""Evaluate candidates over several training seeds on an executor and fold the seeds into one result."""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass, field
from typing import Callable, Iterable

from llm2.evaluation import EvalResult
from llm2.execution.base import EvalJob, Executor
from llm2.stats import mean_std
from llm2.tasks.base import EvalSetting


@dataclass(frozen=True)
class CandidateOutcome:
    """A candidate's result over all its seeds: what the archive records for it."""

    status: str
    stage: str | None
    error: str | None
    fitness: float | None
    fitness_std: float | None
    kl: float | None
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0


def combine(results: list[EvalResult]) -> CandidateOutcome:
    """All seeds must succeed; the first failure (in seed order) speaks for the candidate."""
    seconds = sum(r.seconds for r in results)
    failed = [r for r in results if r.status != "ok"]
    if failed:
        first = failed[0]
        return CandidateOutcome(first.status, first.stage, first.error, None, None, None, {}, seconds)
    fitness, fitness_std = mean_std([r.metrics.fitness for r in results])
    kls = [r.metrics.kl for r in results if r.metrics.kl is not None]
    kl, kl_std = mean_std(kls) if kls else (None, None)
    metrics = {"fitness_per_seed": [r.metrics.fitness for r in results], "kl_std": kl_std,
               "seconds_per_eval": seconds / len(results)}
    for key in results[0].metrics.extra:
        metrics[key] = mean_std([r.metrics.extra.get(key, float("nan")) for r in results])[0]
    return CandidateOutcome("ok", "done", None, fitness, fitness_std, kl, metrics, seconds)


class SeedFanout:
    """Submits one job per (candidate, seed) and reports each candidate once all its seeds are back."""

    def __init__(self, executor: Executor, base: EvalSetting, seeds: list[int]):
        self._executor, self._base, self._seeds = executor, base, seeds
        self._futures: dict[cf.Future, tuple[int, int]] = {}
        self._results: dict[int, dict[int, EvalResult]] = {}

    def submit(self, key: int, code: str) -> None:
        self._results[key] = {}
        for seed in self._seeds:
            job = EvalJob(code=code, setting=self._base.replace(seed=seed), key=f"{key}:{seed}")
            self._futures[self._executor.submit(job)] = (key, seed)

    @property
    def outstanding(self) -> int:
        return len(self._results)

    def drain(self, on_done: Callable[[int, CandidateOutcome], None], block: bool = True) -> None:
        """Collect results as they arrive; ``on_done`` is called once per finished candidate.

        ``block=False`` takes only what is already done, so proposing the next candidate need not wait.
        """
        while self._futures:
            done, _ = cf.wait(list(self._futures), timeout=None if block else 0, return_when=cf.FIRST_COMPLETED)
            for future in done:
                key, seed = self._futures.pop(future)
                self._results[key][seed] = _result_of(future)
                if len(self._results[key]) == len(self._seeds):
                    per_seed = self._results.pop(key)
                    on_done(key, combine([per_seed[s] for s in self._seeds]))
            if not block:
                return


def _result_of(future: cf.Future) -> EvalResult:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - an executor fault is the candidate's failure, never the run's
        return EvalResult("failed", "train", f"the evaluation could not run: {type(exc).__name__}: {exc}")


def evaluate_codes(executor: Executor, codes: Iterable[tuple[int, str]], base: EvalSetting,
                   seeds: list[int]) -> dict[int, CandidateOutcome]:
    """Evaluate several codes side by side and wait for all of them."""
    fanout, outcomes = SeedFanout(executor, base, seeds), {}
    for key, code in codes:
        fanout.submit(key, code)
    fanout.drain(lambda key, outcome: outcomes.__setitem__(key, outcome))
    return outcomes
