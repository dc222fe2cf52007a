"""What runs inside the candidate's process: confine, load the candidate, contract checks, train, send tensors back.

Only this process ever executes candidate code. It reports through the channel: ``stage`` notes as it advances (the
first carries the sandbox layers that took), a ``probe`` (weights after the probe fraction; it then waits for the
worker's verdict), a ``pause`` at each rung's budget the job asks for (weights, then a verdict too), and finally
``result`` (weights, or the name of the file holding them, or, for a task whose output is a directory of files,
the name of that directory in the scratch; and the loss trace) or ``error`` (stage and reason). It never scores
anything itself.

The process is either forked from the warm worker (CPU tasks: the task's training data is already in memory) or
spawned fresh (``python -m llm2.sandbox.child``, for CUDA, which does not survive a fork): then it loads the task and
its training data itself before it confines itself.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llm2.sandbox import channel
from llm2.sandbox.cgroup import Cgroup
from llm2.sandbox.limits import SandboxLimits, SandboxUnavailable, confine
from llm2.sandbox.loader import load_function
from llm2.task_api.base import CandidateError, EvalSetting, Task, TrainOutput
from llm2.task_api.checkpoint import Checkpoint
from llm2.task_api.optional import optional

CONTINUE = b"c"  # the worker's probe verdict; any other byte, or none, stops training
OUTPUT_FILE = "output.safetensors"


@dataclass(frozen=True)
class ChildJob:
    code: str
    setting: EvalSetting
    cascade: bool
    scratch: Path
    limits: SandboxLimits
    readable: tuple[str, ...]
    allow_missing: frozenset[str]
    hidden: tuple[str, ...]  # the task's hidden paths, resolved: covered in the child's mount namespace
    output: str  # "pipe" | "file" | "directory" (Runtime.output)
    result_fd: int  # child -> worker
    control_fd: int  # worker -> child (probe verdicts)
    fingerprint_only: bool = False  # contract checks, then the task's fingerprint of the candidate; no training
    handoff_fd: int = -1  # child -> worker: the scratch tmpfs, for an output read from it (``handoff.py``)
    cgroup: Cgroup | str | None = None  # the group the worker made for it, or why none (``cgroup.py``)
    pauses: tuple[float, ...] = ()  # budgets at which the run hands its weights over as a rung's cut


def run_child(job: ChildJob, task: Task, data: Any) -> None:
    """Entry point of the candidate's process (after ``os.fork()`` or from ``main``); never returns."""
    stage = "static"
    try:
        _isolate_descriptors(job)
        defences = confine(job.scratch, job.limits, list(job.readable), job.allow_missing, job.hidden,
                           job.handoff_fd, job.cgroup)
        sys.dont_write_bytecode = True
        channel.send(job.result_fd, {"kind": "stage", "stage": stage, "defences": defences.as_dict()})
        fn = load_function(job.code, task.contract)
        stage = "contract"
        channel.send(job.result_fd, {"kind": "stage", "stage": stage})
        task.check_contract(fn, data)
        if job.fingerprint_only:
            channel.send(job.result_fd, {"kind": "fingerprint", "values": fingerprint_of(task, fn, data, job.setting)})
            return
        stage = "probe" if job.cascade else "train"
        channel.send(job.result_fd, {"kind": "stage", "stage": stage})

        def probe(output: TrainOutput) -> bool:
            nonlocal stage
            _send_output(job, "probe", output, to_file=False)
            verdict = os.read(job.control_fd, 1)
            stage = "train"
            return verdict == CONTINUE

        def pause(budget: float, output: TrainOutput) -> bool:
            _send_output(job, "pause", output, to_file=False, budget=float(budget))
            return os.read(job.control_fd, 1) == CONTINUE

        checkpoint = (Checkpoint(probe if job.cascade else None, pause, job.pauses) if job.pauses else
                      probe if job.cascade else None)
        output = task.train(fn, data, job.setting, checkpoint)
        _send_output(job, "result", output, to_file=job.output == "file")
    except SandboxUnavailable as exc:
        _send_error(job.result_fd, "static", str(exc), sandbox=True)
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


MAX_FINGERPRINT = 4096


def fingerprint_of(task: Task, fn: Any, data: Any, setting: EvalSetting) -> list[float]:
    """The task's fingerprint of the candidate's behaviour; empty when the task has none or the candidate's
    behaviour cannot be fingerprinted (it then is simply evaluated)."""
    hook = optional(task, "fingerprint")
    if hook is None:
        return []
    try:
        values = [float(v) for v in hook(fn, data, setting.task) or ()]
    except Exception:  # noqa: BLE001 - an unfingerprintable candidate is trained like any other
        return []
    return values if len(values) <= MAX_FINGERPRINT and all(v == v and abs(v) != float("inf") for v in values) else []


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
    keep = {0, 1, 2, job.result_fd, job.control_fd, job.handoff_fd}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the descriptor listdir itself used
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def _send_output(job: ChildJob, kind: str, output: TrainOutput, to_file: bool, **extra: Any) -> None:
    header = {"kind": kind, "steps": int(output.steps), "stop_reason": output.stop_reason,
              "loss_trace": [float(v) for v in output.loss_trace], "curves": output.curves, **extra}
    payload = b""
    if not output.stop_reason:
        if kind == "result" and job.output == "directory":
            if output.output_dir is None:
                raise ValueError("train returned no output_dir, which the task's directory output needs")
            header["directory"] = str(output.output_dir)  # checked by the worker once this process is dead
        elif to_file:
            write_safetensors(output.weights, OUTPUT_FILE)
            header["file"] = OUTPUT_FILE
        else:
            payload = channel.encode_tensors(output.weights)
    channel.send(job.result_fd, header, payload)


_SAFETENSORS_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                       "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def write_safetensors(tensors: dict, name: str) -> None:
    """The safetensors format, written tensor by tensor into the working directory (never the whole file in
    memory). Not safetensors' own save_file: it resolves an absolute path, which the unprivileged user may not be
    able to traverse."""
    cpu = {key: t.detach().to("cpu").contiguous() for key, t in tensors.items()}
    header, offset = {}, 0
    for key, tensor in cpu.items():
        size = tensor.numel() * tensor.element_size()
        header[key] = {"dtype": _SAFETENSORS_DTYPES[str(tensor.dtype).removeprefix("torch.")],
                       "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with open(name, "wb") as file:
        file.write(struct.pack("<Q", len(text)) + text)
        for tensor in cpu.values():
            if tensor.numel():
                file.write(memoryview(tensor.view(-1).view(torch.uint8).numpy()))


def _send_error(fd: int, stage: str, message: str, sandbox: bool = False) -> None:
    try:
        channel.send(fd, {"kind": "error", "stage": stage, "message": message, "sandbox": sandbox})
    except OSError:
        pass  # the worker is gone or stopped listening; nothing left to tell


def main() -> None:
    """A spawned candidate process: the job as JSON on stdin; the channel's descriptors are inherited.

    Everything before ``run_child`` is llm2's own code: load the task and its training data (the cache is
    unreadable once confined) and warm up as a worker does, so that what training imports lazily is imported
    while the interpreter's files can still be read.
    """
    import ctypes

    from llm2.evaluation import job_from_dict
    from llm2.sandbox.warm_up import warm_up
    from llm2.task_api.registry import load_task

    request = json.load(sys.stdin)
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the worker
    if os.getppid() != int(request.get("parent", os.getppid())):
        os._exit(1)  # the worker died before the line above took
    task = load_task(request["task"])
    job_record = job_from_dict(request["job"], task)
    data = task.training_data(job_record.setting.task)
    warm_up(task, job_record.setting.task, data)
    job = ChildJob(job_record.code, job_record.setting, bool(request["cascade"]), Path(request["scratch"]),
                   SandboxLimits.from_dict(request["limits"]), tuple(request["readable"]),
                   frozenset(request["allow_missing"]), tuple(request["hidden"]), request["output"],
                   int(request["result_fd"]), int(request["control_fd"]), job_record.fingerprint_only,
                   int(request.get("handoff_fd", -1)), _cgroup_from(request.get("cgroup")), job_record.pauses)
    run_child(job, task, data)


def _cgroup_from(record: Any) -> Cgroup | str | None:
    """The worker's cgroup record as sent in the spawn request (a dict, a reason, or nothing)."""
    if isinstance(record, dict):
        return Cgroup(int(record["version"]), tuple(record["paths"]), str(record["detail"]))
    return record if isinstance(record, str) else None


if __name__ == "__main__":
    main()
