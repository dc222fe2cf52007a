"""One evaluation's job and result, and their plain-data forms for the pipes between an executor and its workers.

Candidate code is evaluated by ``llm2.execution`` (a confined child trains, a trusted supervisor scores);
``llm2.trusted.evaluate_trusted`` gives the same ``EvalResult`` for code llm2 or the user ships (never candidates).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

from llm2.task_api.base import EvalSetting, Metrics, Task

# The stages at which a candidate can stop (the cascade's order).
STAGES = ("static", "contract", "probe", "rung", "train", "score", "done")  # rung: stopped on a lower rung


@dataclass(frozen=True)
class EvalResult:
    status: str
    stage: str
    error: str | None = None
    metrics: Metrics | None = None
    seconds: float = 0.0
    loss_trace: tuple[float, ...] = field(default=(), repr=False)
    probe_fitness: float | None = None  # the cascade probe's fitness, when a probe was scored
    sandbox: tuple[str, ...] = ()  # the confinement layers that took in the candidate's process
    # a fingerprint job's answer: the task's fingerprint of the candidate's behaviour (empty: the task has none for it)
    fingerprint: tuple[float, ...] = field(default=(), repr=False)
    curves: dict = field(default_factory=dict, repr=False)  # the task's small training curves, name -> values
    # processor time the evaluation took (worker, candidate and scoring), unlike ``seconds`` unmoved by other load
    cpu_seconds: float = 0.0

    @property
    def fitness(self) -> float | None:
        return None if self.metrics is None else self.metrics.fitness


@dataclass(frozen=True)
class EvalJob:
    code: str
    setting: EvalSetting
    key: str = ""  # the caller's label (e.g. candidate id), echoed back unchanged
    baseline_probe: float | None = None  # the reference baseline's probe fitness at this setting and seed
    fingerprint_only: bool = False  # the cheap first stage: contract checks and the task's fingerprint, no training
    # budgets (EvalSetting.budget's unit) at which a run that can pause hands its weights over as a rung's cut
    pauses: tuple[float, ...] = ()
    # on_pause(budget, the cut's result) -> train on? Asked in the process that drives the worker (a local
    # executor's thread); it never crosses a pipe, so without it (Ray) every pause stops the run there
    on_pause: Callable[[float, EvalResult], bool] | None = field(default=None, compare=False, repr=False)


# -- plain-data forms, for the pipes between an executor and its worker processes --------------------------------
def job_to_dict(job: EvalJob) -> dict:
    return {"code": job.code, "setting": {"task": dataclasses.asdict(job.setting.task), "seed": job.setting.seed,
                                          "budget": job.setting.budget},
            "key": job.key, "baseline_probe": job.baseline_probe, "fingerprint_only": job.fingerprint_only,
            "pauses": list(job.pauses)}


def job_from_dict(data: dict, task: Task) -> EvalJob:
    setting = data["setting"]
    return EvalJob(str(data["code"]), EvalSetting(task.settings_from_dict(setting["task"]), int(setting["seed"]),
                                                  float(setting["budget"])),
                   str(data.get("key", "")), data.get("baseline_probe"), bool(data.get("fingerprint_only", False)),
                   tuple(float(b) for b in data.get("pauses") or ()))


def result_to_dict(result: EvalResult) -> dict:
    metrics = None if result.metrics is None else dataclasses.asdict(result.metrics)
    return {"status": result.status, "stage": result.stage, "error": result.error, "metrics": metrics,
            "seconds": result.seconds, "loss_trace": list(result.loss_trace), "probe_fitness": result.probe_fitness,
            "sandbox": list(result.sandbox), "fingerprint": list(result.fingerprint), "curves": result.curves,
            "cpu_seconds": result.cpu_seconds}


def result_from_dict(data: dict) -> EvalResult:
    metrics = None if data.get("metrics") is None else Metrics(**data["metrics"])
    return EvalResult(data["status"], data["stage"], data.get("error"), metrics, float(data.get("seconds", 0.0)),
                      tuple(data.get("loss_trace", ())), data.get("probe_fitness"), tuple(data.get("sandbox", ())),
                      tuple(float(v) for v in data.get("fingerprint") or ()), dict(data.get("curves") or {}),
                      float(data.get("cpu_seconds", 0.0)))
