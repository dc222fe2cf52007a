"""What an executor takes and gives: an ``EvalJob`` in, a future ``EvalResult`` out (never an exception)."""

from __future__ import annotations

import concurrent.futures
from typing import Any, Protocol

from llm2.evaluation import EvalJob, EvalResult
from llm2.sandbox.static_checks import static_check, static_error
from llm2.task_api.base import Contract


class Executor(Protocol):
    def submit(self, job: EvalJob) -> concurrent.futures.Future[EvalResult]:
        """Queue one evaluation; candidate faults end in the result, never as an exception."""

    def close(self) -> None:
        """Stop every worker; no process is left behind."""


class ExecutorBase:
    """Context-manager support and the static checks, shared by the executors (run once per candidate, here)."""

    contract: Contract
    static_checks: bool = True
    # whether a job's on_pause is asked (EvalJob.pauses): only where the handle runs in this process
    answers_pauses: bool = False

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def static_rejection(self, job: EvalJob) -> concurrent.futures.Future[EvalResult] | None:
        """A finished future when the static checks reject the job: answered at once, no worker round trip."""
        if not self.static_checks:
            return None
        problems = static_check(job.code, self.contract)
        return completed(EvalResult("invalid", "static", static_error(problems))) if problems else None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def completed(result: EvalResult) -> concurrent.futures.Future[EvalResult]:
    future: concurrent.futures.Future[EvalResult] = concurrent.futures.Future()
    future.set_result(result)
    return future
