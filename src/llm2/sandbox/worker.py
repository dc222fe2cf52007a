"""A warm worker process: ``python -m llm2.sandbox.worker CONFIG``.

It imports torch and loads the task's training data once, then serves jobs one at a time over JSON lines (stdin in,
a private copy of stdout out), each in a fresh confined child (``SandboxRunner``). It holds no scoring data and
scores nothing: a probe's weights and the final weights go to its handle (``llm2.execution.handle``) as safetensors
files in the worker's own directory, and the handle, in a trusted process, scores them and answers the probe.

A task whose output is a directory (``Runtime(output="directory")``) has it moved, once checked, into the worker's
directory too, and named in the result as ``directory`` instead of ``path``; the handle removes it after scoring.

Protocol, one JSON object per line. Handle -> worker: ``{"job": {...}}``, ``{"verdict": "continue" | "stop",
"reason": ...}``. Worker -> handle: ``{"event": "ready"}``, ``{"event": "started"}``, ``{"event": "probe", "path",
"steps", "loss_trace"}``, ``{"event": "pause", "budget", "path", "steps", "loss_trace"}`` (a rung's cut, answered
with a verdict as a probe is), ``{"event": "result", "status", "stage", "error", "path" | "directory", "steps",
"loss_trace", "sandbox", "probe_fitness"}`` (stage "rung" without weights: stopped at a pause).
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import pickle
import resource
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from llm2.sandbox.limits import SandboxLimits
from llm2.sandbox.warm_up import warm_up


@dataclass(frozen=True)
class WorkerConfig:
    task_spec: str
    limits: SandboxLimits = SandboxLimits()
    cascade: bool = True
    allow_missing: frozenset[str] = frozenset()
    warm_settings: dict | None = None  # the task settings whose training data is loaded at start (as a dict)
    home: str | None = None  # the worker's directory: its scratch root and where it leaves weights for the handle
    answer_grace_s: float = 120.0  # beyond the candidate's timeout, for scoring (trusted) before a worker is hung

    def encode(self) -> str:
        """For the worker's command line. Pickle is fine here: both ends are llm2's own trusted processes."""
        return base64.b64encode(pickle.dumps(self)).decode()

    @classmethod
    def decode(cls, text: str) -> "WorkerConfig":
        config = pickle.loads(base64.b64decode(text))  # noqa: S301 - written by our own executor, see encode
        if not isinstance(config, cls):
            raise TypeError("not a WorkerConfig")
        return config


class _Worker:
    def __init__(self, config: WorkerConfig, requests: TextIO, replies_fd: int):
        from llm2.sandbox.runner import SandboxOptions, SandboxRunner
        from llm2.task_api.registry import load_task

        self.config, self.requests, self.replies_fd = config, requests, replies_fd
        self.task = load_task(config.task_spec)
        self.runner = SandboxRunner(self.task, config.task_spec, config.home)
        self.options = SandboxOptions(config.limits, config.cascade, config.allow_missing)
        self.home = Path(config.home)  # always set: only WorkerHandle.start starts a worker
        self._data: dict[Any, Any] = {}
        self._files = 0

    def data(self, settings: Any) -> Any:
        if settings not in self._data:
            self._data[settings] = self.task.training_data(settings)
            warm_up(self.task, settings, self._data[settings])
        return self._data[settings]

    def serve(self) -> None:
        from llm2.evaluation import job_from_dict

        try:
            if self.config.warm_settings is not None:
                self.data(self.task.settings_from_dict(self.config.warm_settings))
            self.reply({"event": "ready", "pid": os.getpid()})
            for line in self.requests:
                job = job_from_dict(json.loads(line)["job"], self.task)
                self.run(job)
        finally:
            self.runner.close()

    def run(self, job: Any) -> None:
        cpu_started = processor_seconds()
        try:
            data = self.data(job.setting.task)
            self.reply({"event": "started"})
            outcome = self.runner.evaluate(job.code, job.setting, data, self.options, self.ask_probe,
                                           job.fingerprint_only, job.pauses, self.ask_pause)
        except Exception as exc:  # noqa: BLE001 - a fault of trusted code: report it, keep serving
            self.reply({"event": "result", "status": "failed", "stage": "train",
                        "error": f"worker error: {type(exc).__name__}: {exc}"})
            return
        reply = {"event": "result", "status": outcome.status, "stage": outcome.stage, "error": outcome.error,
                 "sandbox": list(outcome.sandbox), "probe_fitness": outcome.probe_fitness,
                 "fingerprint": list(outcome.fingerprint), "curves": outcome.curves,
                 "cpu_seconds": processor_seconds() - cpu_started + outcome.cpu_seconds}
        output = outcome.output
        if output is not None:
            where = ({"directory": self.adopt(output.output_dir)} if output.output_dir is not None else
                     {"path": self.save(output.weights)})
            reply.update(where, steps=output.steps, loss_trace=output.loss_trace)
        self.reply(reply)

    def ask_probe(self, output: Any) -> tuple[str | None, float | None]:
        """Hand the probe's weights to the handle, which scores them, and wait for its verdict."""
        self.reply({"event": "probe", "path": self.save(output.weights), "steps": output.steps,
                    "loss_trace": output.loss_trace})
        line = self.requests.readline()
        verdict = json.loads(line) if line else {"verdict": "stop", "reason": "the handle closed the channel"}
        fitness = verdict.get("fitness")
        if verdict.get("verdict") == "continue":
            return None, fitness
        return str(verdict.get("reason") or "stopped by the probe"), fitness

    def ask_pause(self, budget: float, output: Any) -> bool:
        """Hand a rung's cut to the handle, which scores it and says whether the run trains on."""
        self.reply({"event": "pause", "budget": budget, "path": self.save(output.weights), "steps": output.steps,
                    "loss_trace": output.loss_trace})
        line = self.requests.readline()
        return bool(line) and json.loads(line).get("verdict") == "continue"

    def save(self, weights: dict) -> str:
        from safetensors.torch import save_file

        self._files += 1
        path = self.home / f"weights-{os.getpid()}-{self._files}.safetensors"
        save_file(weights, str(path))
        return str(path)

    def adopt(self, directory: str) -> str:
        """Move a checked output directory from the runner's scratch root into this worker's directory."""
        self._files += 1
        path = self.home / f"output-{os.getpid()}-{self._files}"
        os.replace(directory, path)
        return str(path)

    def reply(self, message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self.replies_fd, data):]


def processor_seconds() -> float:
    """This worker's own processor time (the candidate's processes are counted by the runner: ``ChildOutcome``)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def main() -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the executor
    replies_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints from libraries must not corrupt the reply stream
    import torch

    torch.set_num_threads(1)
    _Worker(WorkerConfig.decode(sys.argv[1]), sys.stdin, replies_fd).serve()


if __name__ == "__main__":
    # run the imported module's main, not this __main__ copy, so pickled WorkerConfig classes match
    from llm2.sandbox.worker import main as worker_main

    worker_main()
