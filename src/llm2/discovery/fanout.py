"""Evaluate code over several training seeds (and settings) on an executor and fold the seeds into one result.

The fan-out every command shares: the discovery's driver (driver.py) evaluates candidates through SeedFanout;
`heldout` and `evaluate` evaluate fixed code at many settings through fan_out. (One evaluation's job and result
are `llm2.evaluation`'s EvalJob and EvalResult.)
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import threading
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from llm2.archive import Archive
from llm2.archive.records import CandidateRecord, metric_value
from llm2.evaluation import EvalJob, EvalResult
from llm2.execution.base import Executor
from llm2.points import settings_key
from llm2.stats import mean_std
from llm2.task_api.base import EvalSetting


@dataclass(frozen=True)
class CandidateOutcome:
    """A candidate's result over all its seeds: what the archive records for it."""

    status: str
    stage: str | None
    error: str | None
    fitness: float | None
    fitness_std: float | None
    metrics: dict = field(default_factory=dict)  # the task's numbers (mean over seeds; "<name>_std" the spread)
    seconds: float = 0.0
    sandbox: tuple[str, ...] = ()
    curves: tuple[dict, ...] = ()  # the task's training curves per seed, in seed order (empty dicts where none)
    per_seed: tuple[EvalResult, ...] = ()  # each seed's own result, for a rung that carries it up (not recorded)

    def value(self, key: str) -> float | None:
        return metric_value(self.metrics, key)


def combine(results: list[EvalResult]) -> CandidateOutcome:
    """All seeds must succeed; the first failure (in seed order) speaks for the candidate."""
    seconds = sum(r.seconds for r in results)
    cpu_seconds = sum(r.cpu_seconds for r in results)
    sandbox = _common_layers(results)
    probes = [r.probe_fitness for r in results]
    failed = [r for r in results if r.status != "ok"]
    curves = tuple(r.curves for r in results)
    if failed:
        first = failed[0]
        return CandidateOutcome(first.status, first.stage, first.error, None, None,
                                {"probe_fitness_per_seed": probes, "cpu_seconds": cpu_seconds}, seconds, sandbox,
                                curves, tuple(results))
    fitness, fitness_std = mean_std([r.metrics.fitness for r in results])
    metrics = {"fitness_per_seed": [r.metrics.fitness for r in results], "probe_fitness_per_seed": probes,
               "seconds_per_eval": seconds / len(results), "cpu_seconds": cpu_seconds}
    for key in results[0].metrics.values:
        metrics[key], metrics[f"{key}_std"] = mean_std([r.metrics.values.get(key, float("nan")) for r in results])
    return CandidateOutcome("ok", "done", None, fitness, fitness_std, metrics, seconds, sandbox, curves,
                            tuple(results))


def _common_layers(results: list[EvalResult]) -> tuple[str, ...]:
    """The sandbox layers that took in every one of the candidate's processes."""
    layer_sets = [set(r.sandbox) for r in results if r.sandbox]
    if not layer_sets:
        return ()
    return tuple(sorted(set.intersection(*layer_sets)))


# on_fingerprint(key, fingerprint) -> True to evaluate the candidate, False when the caller has settled it otherwise
FingerprintJudge = Callable[[int, tuple], bool]
# on_pause(key, seed, budget, the cut's result) -> train on; asked from an executor's worker thread
PauseJudge = Callable[[int, int, float, EvalResult], bool]


@dataclass(frozen=True)
class SeedRun:
    """One training seed's job: trained to ``budget`` (None: the base setting's), pausing at ``pauses`` on the way."""

    seed: int
    budget: float | None = None
    pauses: tuple[float, ...] = ()


class SeedFanout:
    """Submits one job per (candidate, seed) and reports each candidate once all its seeds are back.

    ``baseline_probe`` maps a seed to the reference baseline's probe fitness at that seed, once the run knows it,
    so the cascade can judge a probe against what the reference had reached by the same point.

    With ``on_fingerprint`` set, a candidate first gets one cheap fingerprint job (contract checks and the task's
    fingerprint of its behaviour, in the confined child); its seeds are submitted only if ``on_fingerprint`` says
    so. A candidate that fails that stage is reported as it failed, without training.

    A run with pauses (multi-fidelity, rungs.py) asks ``on_pause`` at each; that may add seeds to the candidate
    (``add_runs``) from a worker thread, hence the lock.
    """

    def __init__(self, executor: Executor, base: EvalSetting, seeds: list[int],
                 baseline_probe: dict[int, float] | None = None, on_fingerprint: FingerprintJudge | None = None):
        self._executor, self._base, self._seeds = executor, base, seeds
        self.baseline_probe = dict(baseline_probe or {})
        self.on_fingerprint = on_fingerprint
        self.on_pause: PauseJudge | None = None
        self._lock = threading.RLock()
        self._futures: dict[cf.Future, tuple[int, int | None]] = {}  # seed None: the fingerprint job
        self._results: dict[int, dict[int, EvalResult]] = {}
        self._codes: dict[int, str] = {}
        self._plans: dict[int, list[SeedRun]] = {}  # key -> its seeds' runs, in seed order
        self._checks: dict[int, EvalResult] = {}  # key -> its fingerprint stage's result, until its seeds are back

    def submit(self, key: int, code: str, budget: float | None = None, seeds: list[int] | None = None,
               fingerprint: bool = True, runs: list[SeedRun] | None = None,
               done: dict[int, EvalResult] | None = None) -> None:
        """Evaluate ``code`` at ``budget`` (default: the base setting's) over ``seeds`` (default: all), or as
        ``runs``; ``fingerprint=False`` skips the fingerprint stage (a candidate already fingerprinted); ``done``:
        seeds already trained (a rung's results carried up), combined with the new ones in seed order."""
        with self._lock:
            self._results[key] = dict(done or {})
            planned = list(runs) if runs is not None else [SeedRun(seed, budget) for seed in (seeds or self._seeds)]
            assert planned, "a submission trains at least one seed"
            planned += [SeedRun(seed) for seed in self._results[key]]
            order = {seed: n for n, seed in enumerate(self._seeds)}
            self._plans[key] = sorted(planned, key=lambda run: order.get(run.seed, len(order)))
            if self.on_fingerprint is not None and fingerprint:
                self._codes[key] = code
                job = EvalJob(code=code, setting=self._base.replace(seed=self._seeds[0]), key=f"{key}:fingerprint",
                              fingerprint_only=True)
                self._futures[self._executor.submit(job)] = (key, None)
                return
            self._submit_runs(key, code, self._untrained(key))

    def _untrained(self, key: int) -> list[SeedRun]:
        return [run for run in self._plans[key] if run.seed not in self._results[key]]

    def add_runs(self, key: int, code: str, runs: list[SeedRun]) -> None:
        """More seeds for a candidate under way (promoted at a pause: the next rung's other seeds)."""
        with self._lock:
            self._plans[key].extend(runs)
            self._submit_runs(key, code, runs)

    def _submit_runs(self, key: int, code: str, runs: list[SeedRun]) -> None:
        for run in runs:
            base = self._base if run.budget is None else self._base.replace(budget=run.budget)
            on_pause = (functools.partial(self._paused, key, run.seed) if run.pauses and self.on_pause is not None
                        else None)
            job = EvalJob(code=code, setting=base.replace(seed=run.seed), key=f"{key}:{run.seed}",
                          # the reference's probe was measured at the full budget: no yardstick for a lower rung
                          baseline_probe=self.baseline_probe.get(run.seed) if run.budget in (None, 1.0) else None,
                          pauses=run.pauses, on_pause=on_pause)
            self._futures[self._executor.submit(job)] = (key, run.seed)

    def _paused(self, key: int, seed: int, budget: float, cut: EvalResult) -> bool:
        return self.on_pause(key, seed, budget, cut)

    def __contains__(self, key: int) -> bool:
        """Submitted and not yet handed to ``on_done``."""
        with self._lock:
            return key in self._results

    def drain(self, on_done: Callable[[int, CandidateOutcome], None], block: bool = True) -> None:
        """Collect results as they arrive; ``on_done`` is called once per finished candidate.

        ``block=False`` takes only what is already done, so proposing the next candidate need not wait.
        """
        while True:
            with self._lock:
                futures = list(self._futures)
            if not futures:
                return
            done, _ = cf.wait(futures, timeout=None if block else 0, return_when=cf.FIRST_COMPLETED)
            for future in done:
                with self._lock:
                    key, seed = self._futures.pop(future)
                    if seed is None:
                        code = self._codes.pop(key)
                    else:
                        self._results[key][seed] = _result_of(future)
                        plan = self._plans[key]
                        complete = len(self._results[key]) == len(plan)
                        if complete:
                            per_seed = self._results.pop(key)
                            self._plans.pop(key)
                if seed is None:
                    self._fingerprinted(key, code, _result_of(future), on_done)
                elif complete:
                    outcome = combine([per_seed[run.seed] for run in plan])  # in the run's seed order
                    on_done(key, self._with_check_cost(key, outcome))
            if not block:
                return

    def _with_check_cost(self, key: int, outcome: CandidateOutcome) -> CandidateOutcome:
        """The outcome with its fingerprint stage's seconds counted: a candidate's cost is all it took."""
        with self._lock:
            check = self._checks.pop(key, None)
        if check is None:
            return outcome
        metrics = {**outcome.metrics, "cpu_seconds": outcome.metrics.get("cpu_seconds", 0.0) + check.cpu_seconds}
        return replace(outcome, seconds=outcome.seconds + check.seconds, metrics=metrics)

    def _fingerprinted(self, key: int, code: str, result: EvalResult,
                       on_done: Callable[[int, CandidateOutcome], None]) -> None:
        if result.status != "ok":  # broke the contract (or could not run): no training would change that
            with self._lock:
                self._results.pop(key)
                self._plans.pop(key)
            on_done(key, combine([result]))
        elif self.on_fingerprint(key, result.fingerprint):
            with self._lock:
                self._checks[key] = result
                self._submit_runs(key, code, self._untrained(key))
        else:
            with self._lock:
                self._results.pop(key)
                self._plans.pop(key)


def record_outcome(archive: Archive, candidate: CandidateRecord, outcome: CandidateOutcome,
                   feedback: str | None) -> str:
    """Store a candidate's outcome (a generation-0 candidate that succeeded is a baseline); its status."""
    status = "baseline" if candidate.generation == 0 and outcome.status == "ok" else outcome.status
    archive.finish_candidate(candidate.id, status=status, stage=outcome.stage, error=outcome.error,
                             fitness=outcome.fitness, fitness_std=outcome.fitness_std, metrics=outcome.metrics,
                             seconds=outcome.seconds, feedback=feedback, sandbox=outcome.sandbox)
    return status


def _result_of(future: cf.Future) -> EvalResult:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - an executor fault is the candidate's failure, never the run's
        return EvalResult("failed", "train", f"the evaluation could not run: {type(exc).__name__}: {exc}")


def evaluate_grid(executor: Executor, codes: list[tuple[int, str]], settings: list[EvalSetting],
                  seeds: list[int]) -> dict[tuple[int, int], CandidateOutcome]:
    """Every code at every setting over ``seeds``; keyed by (setting's position, code's key)."""
    outcomes: dict[tuple[int, int], CandidateOutcome] = {}
    jobs = [(setting, seeds, code) for setting in settings for _, code in codes]
    fan_out(executor, jobs, lambda n, outcome: outcomes.__setitem__(divmod(n, len(codes)), outcome))
    return {(position, codes[k][0]): outcome for (position, k), outcome in outcomes.items()}


def fan_out(executor: Executor, jobs: Sequence[tuple[EvalSetting, list[int], str]],
            on_done: Callable[[int, CandidateOutcome], None],
            on_setting_done: Callable[[int], None] | None = None) -> None:
    """Evaluate each job (setting, seeds, code), all submitted at once so every worker stays busy: one SeedFanout per
    distinct (setting, seeds). ``on_done(job's position, outcome)`` as each is drained, setting by setting;
    ``on_setting_done(settings done)`` after each setting. Nothing is recorded as a candidate: `heldout` and
    `evaluate` record points, the discovery's driver records candidates (driver.py)."""
    fanouts: dict[tuple, tuple[SeedFanout, list[int]]] = {}
    for position, (setting, seeds, code) in enumerate(jobs):
        group = (settings_key(setting.label(), ()), tuple(seeds))
        if group not in fanouts:
            fanouts[group] = (SeedFanout(executor, setting, list(seeds)), [])
        fanout, members = fanouts[group]
        fanout.submit(len(members), code)
        members.append(position)
    for done, (fanout, members) in enumerate(fanouts.values(), start=1):
        fanout.drain(lambda k, outcome, members=members: on_done(members[k], outcome))
        if on_setting_done is not None:
            on_setting_done(done)
