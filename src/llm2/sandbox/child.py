"""What runs inside the forked child: confine, load the candidate, contract checks, train, send tensors back.

Only this process ever executes candidate code. It reports through the channel: ``stage`` notes as it advances,
a ``probe`` (weights after the probe fraction; it then waits for the worker's verdict), and finally ``result``
(weights and loss trace) or ``error`` (stage and reason). It never scores anything itself.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from llm2.candidate import load_function
from llm2.sandbox import channel
from llm2.sandbox.limits import SandboxLimits, confine
from llm2.tasks.base import CandidateError, EvalSetting, Task, TrainOutput

CONTINUE = b"c"  # the worker's probe verdict; any other byte, or none, stops training


@dataclass(frozen=True)
class ChildJob:
    code: str
    setting: EvalSetting
    cascade: bool
    scratch: Path
    limits: SandboxLimits
    readable: tuple[str, ...]
    result_fd: int  # child -> worker
    control_fd: int  # worker -> child (probe verdicts)


def run_child(job: ChildJob, task: Task) -> None:
    """Entry point after ``os.fork()``; never returns."""
    stage = "static"
    try:
        _isolate_descriptors(job)
        defences = confine(job.scratch, job.limits, list(job.readable))
        torch.set_num_threads(1)
        sys.dont_write_bytecode = True
        channel.send(job.result_fd, {"kind": "stage", "stage": stage, "defences": defences.__dict__})
        fn = load_function(job.code, task.contract)
        stage = "contract"
        channel.send(job.result_fd, {"kind": "stage", "stage": stage})
        task.check_contract(fn)
        stage = "probe" if job.cascade else "train"
        channel.send(job.result_fd, {"kind": "stage", "stage": stage})

        def checkpoint(output: TrainOutput) -> bool:
            nonlocal stage
            _send_output(job.result_fd, "probe", output)
            verdict = os.read(job.control_fd, 1)
            stage = "train"
            return verdict == CONTINUE

        output = task.train(fn, job.setting, checkpoint if job.cascade else None)
        _send_output(job.result_fd, "result", output)
    except CandidateError as exc:
        _send_error(job.result_fd, exc.stage, str(exc))
    except MemoryError:
        _send_error(job.result_fd, stage, "MemoryError: out of memory")
    except RecursionError:
        _send_error(job.result_fd, stage, "RecursionError: maximum recursion depth exceeded")
    except BaseException as exc:  # noqa: BLE001 - any failure of candidate code is reported, never raised
        _send_error(job.result_fd, stage, f"{type(exc).__name__}: {str(exc)[:500]}")
    finally:
        os._exit(0)


def _isolate_descriptors(job: ChildJob) -> None:
    """Scratch dir as cwd, stdout/stderr into capped files there, every inherited descriptor but the channel closed."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGPIPE, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    os.chdir(job.scratch)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
        target = os.open(job.scratch / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    os.close(null)
    keep = {0, 1, 2, job.result_fd, job.control_fd}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the descriptor listdir itself used
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def _send_output(fd: int, kind: str, output: TrainOutput) -> None:
    header = {"kind": kind, "steps": int(output.steps), "stop_reason": output.stop_reason,
              "loss_trace": [float(v) for v in output.loss_trace]}
    payload = b"" if output.stop_reason else channel.encode_tensors(output.weights)
    channel.send(fd, header, payload)


def _send_error(fd: int, stage: str, message: str) -> None:
    try:
        channel.send(fd, {"kind": "error", "stage": stage, "message": message})
    except OSError:
        pass  # the worker is gone or stopped listening; nothing left to tell
