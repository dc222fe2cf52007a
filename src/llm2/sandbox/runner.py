"""One candidate in a warm worker: start a confined child, supervise it, validate the tensors it sends back.

The worker holding a ``SandboxRunner`` has imported torch and loaded the task's training data once; each candidate
costs a fork (or, for CUDA, a fresh spawned process), not an interpreter. It never imports candidate code and never
scores: it validates the child's tensors against the task's output spec and hands them on, and asks its caller
(``judge_probe``) whether a probe may go on, and (``judge_pause``) whether a run paused at a rung's cut trains on.
Reading the child's messages is the ``Supervisor``'s job (supervisor.py).

A task whose output is a directory (``Runtime(output="directory")``, e.g. a model written shard by shard) gets it
back only once every process of the child is gone: the directory is then moved out of the scratch into the
runner's own directory, checked (``channel.take_directory``) and handed on as ``TrainOutput.output_dir``; whoever
takes the outcome owns it from then on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from llm2.sandbox import cgroup, handoff
from llm2.sandbox.child import ChildJob, run_child
from llm2.sandbox.environment import worker_environment
from llm2.sandbox.limits import SPAWN_STARTUP_S, SandboxLimits, cuda_limits, end_child
from llm2.sandbox.processes import group_processor_seconds
from llm2.sandbox.supervisor import (ChildOutcome, DirectoryOutput, PauseJudge, ProbeJudge,  # noqa: F401 - re-exported
                                     Supervisor)
from llm2.task_api.base import EvalSetting, Runtime, Task
from llm2.task_api.optional import optional


@dataclass(frozen=True)
class SandboxOptions:
    limits: SandboxLimits = SandboxLimits()
    cascade: bool = True
    allow_missing: frozenset[str] = frozenset()  # sandbox layers the user explicitly opted out of (recorded)


def runtime_limits(limits: SandboxLimits, runtime: Runtime) -> SandboxLimits:
    """The limits a candidate of this runtime runs under: the CUDA profile for a GPU, room for a weights file (or
    a directory's largest file) written to the scratch directory, and the memory the task says its training needs
    (never less than given)."""
    if runtime.device == "cuda":
        limits = cuda_limits(limits)
    changes: dict[str, Any] = {}
    if runtime.output in ("file", "directory"):
        if runtime.output_limit_bytes:
            changes["output_bytes"] = max(limits.output_bytes, runtime.output_limit_bytes)
        if limits.scratch_bytes:  # the output is written to the scratch tmpfs too: room for it beside the rest
            changes["scratch_bytes"] = limits.scratch_bytes + (runtime.output_limit_bytes or limits.output_bytes)
    if runtime.memory_bytes:
        changes["memory_bytes"] = max(limits.memory_bytes, runtime.memory_bytes)
    return replace(limits, **changes) if changes else limits


class SandboxRunner:
    """Runs candidate code for one task, one candidate at a time, each in a fresh confined process."""

    def __init__(self, task: Task, task_spec: str, scratch_root: str | None = None):
        from llm2.sandbox.confine import prepare_worker
        from llm2.sandbox.filesystem import read_roots

        self.task, self.task_spec = task, task_spec
        self.scratch_root = Path(tempfile.mkdtemp(prefix="llm2-sandbox-", dir=scratch_root))
        self.hidden = tuple(optional(task, "hidden_paths")())
        self.readable = tuple(read_roots(exclude=self.hidden))
        self._outputs = 0
        self._refusal: tuple[str | None] | None = None  # the hidden-path self-test's verdict, once made
        prepare_worker()
        cgroup.sweep()  # empty groups a SIGKILLed worker left behind

    def close(self) -> None:
        shutil.rmtree(self.scratch_root, ignore_errors=True)

    def evaluate(self, code: str, setting: EvalSetting, data: Any, options: SandboxOptions,
                 judge_probe: ProbeJudge, fingerprint_only: bool = False, pauses: tuple[float, ...] = (),
                 judge_pause: PauseJudge | None = None) -> ChildOutcome:
        """``pauses``: budgets at which a task that can pause hands its weights to ``judge_pause``; a run stopped at
        one ends ok at stage "rung", without output (the judge has had the weights)."""
        runtime = self.task.runtime(setting.task)
        limits = runtime_limits(options.limits, runtime)
        refusal = self._self_test(limits, options.allow_missing)
        if refusal is not None:
            return ChildOutcome("failed", "static", refusal)
        scratch = Path(tempfile.mkdtemp(prefix="cand-", dir=self.scratch_root))
        os.chmod(scratch, 0o777)  # the child runs as an unprivileged user; the directory is its only workspace
        result_r, result_w = os.pipe()
        control_r, control_w = os.pipe()
        # a file or directory output is written to the scratch tmpfs, which the child hands over before any
        # candidate code runs (scratch_bytes 0, for benchmarks: the scratch stays on disk, nothing to hand over)
        read_from_scratch = runtime.output != "pipe" and limits.scratch_bytes
        worker_end, child_end = handoff.pair() if read_from_scratch else (None, None)
        group = cgroup.make(limits.memory_bytes, limits.processes)
        job = ChildJob(code, setting, options.cascade, scratch, limits, self.readable, options.allow_missing,
                       self.hidden, runtime.output, result_w, control_r, fingerprint_only,
                       child_end.fileno() if child_end is not None else -1, group, tuple(pauses))
        try:
            pid = self._start(job, runtime.start, data)
        except BaseException:
            if isinstance(group, cgroup.Cgroup):
                cgroup.remove(group)
            raise
        finally:
            os.close(result_w)
            os.close(control_r)
            if child_end is not None:
                child_end.close()
        spec = self.task.output_spec(data)
        directory = None
        if runtime.output == "directory":
            self._outputs += 1
            directory = DirectoryOutput(self.scratch_root / f"output-{self._outputs}",
                                        runtime.output_limit_bytes or limits.output_bytes, runtime.output_names)
        supervisor = Supervisor(pid, result_r, control_w, limits, options.cascade, spec, scratch,
                                 self.task.probe_fraction, judge_probe,
                                 SPAWN_STARTUP_S if runtime.start == "spawn" else 0.0, directory, worker_end,
                                 tuple(pauses) if judge_pause is not None else (), judge_pause)
        try:
            outcome = supervisor.run()
        finally:
            if supervisor.alive:
                supervisor.cpu_seconds = group_processor_seconds(pid)
                end_child(pid)
            os.close(result_r)
            os.close(control_w)
            supervisor.release_scratch()  # the child's tmpfs, if it was handed over, goes with this descriptor
            shutil.rmtree(scratch, ignore_errors=True)
            if isinstance(group, cgroup.Cgroup):
                cgroup.remove(group)  # kills any process of it still alive (the relay's namespace), then rmdir
        return replace(outcome, cpu_seconds=supervisor.cpu_seconds)

    def _self_test(self, limits: SandboxLimits, allow_missing: frozenset[str]) -> str | None:
        """Once per runner, before the first candidate: the hidden-path self-test (``selftest.py``)."""
        if self._refusal is None:
            from llm2.sandbox.selftest import refusal

            self._refusal = (refusal(self.hidden, list(self.readable), limits, allow_missing, self.scratch_root),)
        return self._refusal[0]

    def _start(self, job: ChildJob, start: str, data: Any) -> int:
        if start == "fork":
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child, which always ends in os._exit
                run_child(job, self.task, data)
            return pid
        # spawn: a fresh interpreter (CUDA cannot be forked); it loads the task's training data itself
        from llm2.evaluation import EvalJob, job_to_dict

        request = {"task": self.task_spec, "job": job_to_dict(EvalJob(job.code, job.setting,
                                                                         fingerprint_only=job.fingerprint_only,
                                                                         pauses=job.pauses)),
                   "cascade": job.cascade, "scratch": str(job.scratch), "limits": asdict(job.limits),
                   "readable": list(job.readable), "allow_missing": sorted(job.allow_missing),
                   "hidden": list(job.hidden),
                   "output": job.output, "result_fd": job.result_fd, "control_fd": job.control_fd,
                   "handoff_fd": job.handoff_fd, "parent": os.getpid(),
                   "cgroup": asdict(job.cgroup) if isinstance(job.cgroup, cgroup.Cgroup) else job.cgroup}
        # NVML answers torch.cuda.is_available() without initialising CUDA, which must first happen in the
        # confined process: confine forks (into the PID namespace), and CUDA does not survive a fork.
        environment = {**worker_environment(), "PYTORCH_NVML_BASED_CUDA_CHECK": "1"}
        # its own process group from the start, so that a timeout during its start-up kills it as well
        process = subprocess.Popen([sys.executable, "-m", "llm2.sandbox.child"], stdin=subprocess.PIPE,
                                   pass_fds=tuple(fd for fd in (job.result_fd, job.control_fd, job.handoff_fd)
                                                  if fd >= 0), cwd=job.scratch, env=environment,
                                   start_new_session=True)
        process.stdin.write(json.dumps(request).encode())
        process.stdin.close()
        process.returncode = 0  # reaped by end_child/kill_group below, never by Popen
        return process.pid


