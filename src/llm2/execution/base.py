"""What an executor takes and gives: an ``EvalJob`` in, a future ``EvalResult`` out (never an exception)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

from llm2.evaluation import EvalResult
from llm2.sandbox.static_checks import static_check, static_error
from llm2.tasks.base import Contract, EvalSetting, Metrics


@dataclass(frozen=True)
class EvalJob:
    code: str
    setting: EvalSetting
    key: str = ""  # the caller's label (e.g. candidate id), echoed back unchanged


class Executor(Protocol):
    def submit(self, job: EvalJob) -> concurrent.futures.Future[EvalResult]:
        """Queue one evaluation; candidate faults end in the result, never as an exception."""

    def close(self) -> None:
        """Stop every worker; no process is left behind."""


class ExecutorBase:
    """Context-manager support shared by the executors."""

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def static_rejection(job: EvalJob, contract: Contract) -> concurrent.futures.Future[EvalResult] | None:
    """A finished future when the static checks reject the job: answered at once, no worker round trip."""
    problems = static_check(job.code, contract)
    return completed(EvalResult("invalid", "static", static_error(problems))) if problems else None


def completed(result: EvalResult) -> concurrent.futures.Future[EvalResult]:
    future: concurrent.futures.Future[EvalResult] = concurrent.futures.Future()
    future.set_result(result)
    return future


# -- plain-data forms, for the pipes between an executor and its worker processes ---------------------------------
def job_to_dict(job: EvalJob) -> dict:
    return {"code": job.code, "setting": dataclasses.asdict(job.setting), "key": job.key}


def job_from_dict(data: dict) -> EvalJob:
    return EvalJob(str(data["code"]), EvalSetting(**data["setting"]), str(data.get("key", "")))


def result_to_dict(result: EvalResult) -> dict:
    metrics = None if result.metrics is None else dataclasses.asdict(result.metrics)
    return {"status": result.status, "stage": result.stage, "error": result.error, "metrics": metrics,
            "seconds": result.seconds, "loss_trace": list(result.loss_trace)}


def result_from_dict(data: dict) -> EvalResult:
    metrics = None if data.get("metrics") is None else Metrics(**data["metrics"])
    return EvalResult(data["status"], data["stage"], data.get("error"), metrics, float(data.get("seconds", 0.0)),
                      tuple(data.get("loss_trace", ())))
