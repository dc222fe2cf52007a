"""One candidate in a warm worker: start a confined child, supervise it, validate the tensors it sends back.

The worker holding a ``SandboxRunner`` has imported torch and loaded the task's training data once; each candidate
costs a fork (or, for CUDA, a fresh spawned process), not an interpreter. It never imports candidate code and never
scores: it validates the child's tensors against the task's output spec and hands them on, and asks its caller
(``judge_probe``) whether a probe may go on.

A task whose output is a directory (``Runtime(output="directory")``, e.g. a model written shard by shard) gets it
back only once every process of the child is gone: the directory is then moved out of the scratch into the
runner's own directory, checked (``channel.take_directory``) and handed on as ``TrainOutput.output_dir``; whoever
takes the outcome owns it from then on.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from llm2.curves import clean_curves
from llm2.sandbox import cgroup, channel, handoff
from llm2.sandbox.child import CONTINUE, OUTPUT_FILE, ChildJob, run_child
from llm2.sandbox.environment import worker_environment
from llm2.sandbox.limits import (SPAWN_STARTUP_S, SandboxLimits, bytes_text, cuda_limits, end_child, kill_group,
                                 signal_reason)
from llm2.sandbox.processes import group_processor_seconds, wait_group_gone
from llm2.task_api.base import EvalSetting, Runtime, Task, TrainOutput
from llm2.task_api.optional import optional

_CHILD_STAGES = ("static", "contract", "probe", "train")

# judge_probe(output) -> (reason to stop, or None to go on; the probe's fitness when it was scored)
ProbeJudge = Callable[[TrainOutput], tuple["str | None", "float | None"]]


@dataclass(frozen=True)
class SandboxOptions:
    limits: SandboxLimits = SandboxLimits()
    cascade: bool = True
    allow_missing: frozenset[str] = frozenset()  # sandbox layers the user explicitly opted out of (recorded)


@dataclass(frozen=True)
class ChildOutcome:
    status: str  # ok | invalid | failed | timeout
    stage: str
    error: str | None = None
    output: TrainOutput | None = None  # validated tensors, when status is ok
    sandbox: tuple[str, ...] = ()  # the layers that took in the child
    probe_fitness: float | None = None
    fingerprint: tuple[float, ...] = ()  # a fingerprint job's answer
    curves: dict = field(default_factory=dict)  # the task's training curves (clean_curves), also when it failed
    cpu_seconds: float = 0.0  # processor seconds of the candidate's processes


@dataclass(frozen=True)
class DirectoryOutput:
    """Where a child's output directory goes once it is dead, and what it may hold."""

    destination: Path
    limit_bytes: int
    names: tuple[str, ...]


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
                 judge_probe: ProbeJudge, fingerprint_only: bool = False) -> ChildOutcome:
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
                       child_end.fileno() if child_end is not None else -1, group)
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
        supervisor = _Supervisor(pid, result_r, control_w, limits, options.cascade, spec, scratch,
                                 self.task.probe_fraction, judge_probe,
                                 SPAWN_STARTUP_S if runtime.start == "spawn" else 0.0, directory, worker_end)
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
                                                                         fingerprint_only=job.fingerprint_only)),
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


class _Supervisor:
    """Reads the child's messages until a result, a death or the deadline; answers the probe."""

    def __init__(self, pid: int, result_fd: int, control_fd: int, limits: SandboxLimits, cascade: bool,
                 spec: channel.WeightsSpec, scratch: Path, probe_fraction: float, judge_probe: ProbeJudge,
                 startup_s: float = 0.0, directory: DirectoryOutput | None = None,
                 handoff_socket: socket.socket | None = None):
        self.pid, self.result_fd, self.control_fd = pid, result_fd, control_fd
        self.handoff_socket = handoff_socket
        self.scratch_fd: int | None = None  # the child's scratch tmpfs, once received
        self.limits, self.cascade, self.spec, self.scratch = limits, cascade, spec, scratch
        self.directory = directory
        self.probe_fraction, self.judge_probe = probe_fraction, judge_probe
        self.max_payload = channel.payload_limit(spec)
        self.stage = "static"
        self.sandbox: tuple[str, ...] = ()
        self.probe_fitness: float | None = None
        self.probe_passed = False
        self.alive = True
        self.cpu_seconds = 0.0  # the candidate's processes' processor time, read just before they are ended
        self.starting = startup_s > 0  # until its first message: a spawned child is still starting
        self.deadline = time.monotonic() + limits.timeout_s + startup_s

    def run(self) -> ChildOutcome:
        while True:
            try:
                message = channel.receive(self.result_fd, self.deadline, self.max_payload)
            except channel.ChannelTimeout:
                return self._timeout()
            except channel.ChannelClosed:
                return self._died()
            except channel.ChannelError as exc:
                return self._fail(self.stage, str(exc))
            if self.starting:  # confined now: from here on the candidate's own timeout applies
                self.starting = False
                self.deadline = time.monotonic() + self.limits.timeout_s
            kind = message.header["kind"]
            if kind == "stage":
                self._note_stage(message.header)
            elif kind == "probe":
                verdict = self._judge_probe(message)
                if verdict is not None:
                    return verdict
            elif kind == "error":
                return self._child_error(message.header)
            elif kind == "fingerprint":
                self._end()
                values = message.header.get("values")
                values = tuple(float(v) for v in values) if isinstance(values, list) else ()
                return ChildOutcome("ok", "fingerprint", None, None, self.sandbox, fingerprint=values)
            else:
                return self._final(message)

    def _note_stage(self, header: dict) -> None:
        if header.get("stage") in _CHILD_STAGES:
            self.stage = header["stage"]
        defences = header.get("defences")
        if isinstance(defences, dict) and isinstance(defences.get("applied"), list):
            self.sandbox = tuple(str(layer) for layer in defences["applied"])

    def _judge_probe(self, message: channel.Message) -> ChildOutcome | None:
        """Have the probe's weights scored; None lets training continue, an outcome ends the run."""
        started = time.monotonic()
        self.stage = "probe"
        fraction = f"after {self.probe_fraction:.0%} of training"
        try:
            reason, self.probe_fitness = self.judge_probe(self._output(message))
        except channel.ChannelError as exc:
            reason = str(exc)
        if reason is not None:
            return self._fail("probe", f"{reason}, {fraction}")
        try:
            os.write(self.control_fd, CONTINUE)
        except BrokenPipeError:
            pass  # the child is gone; the next read reports how it ended
        self.deadline += time.monotonic() - started  # the candidate's clock does not run while we score
        self.probe_passed = True
        self.stage = "train"
        return None

    def _final(self, message: channel.Message) -> ChildOutcome:
        self._end()  # dead before anything it wrote is read
        header = message.header
        stop_reason = header.get("stop_reason")
        curves = clean_curves(header.get("curves"))
        if stop_reason:
            stage = "train" if self.probe_passed or not self.cascade else "probe"
            return replace(self._fail(stage, str(stop_reason)[:500]), curves=curves)
        try:
            output = self._output(message)
        except channel.ChannelError as exc:
            return self._fail("score", str(exc))
        return ChildOutcome("ok", "done", None, output, self.sandbox, self.probe_fitness, curves=curves)

    def _output(self, message: channel.Message) -> TrainOutput:
        final = message.header["kind"] == "result"
        if self.directory is not None and final:
            return self._directory_output(message.header)
        if "directory" in message.header:
            raise channel.ChannelError("the child named an output directory where tensors were expected")
        if "file" in message.header:
            if message.header["kind"] != "result" or message.header["file"] != OUTPUT_FILE:
                raise channel.ChannelError("the child named an unexpected output file")
            weights = channel.decode_file(self._output_root() / OUTPUT_FILE, self.spec)
        else:
            weights = channel.decode_weights(message.payload, self.spec)
        trace = channel.decode_loss_trace(message.header)
        return TrainOutput(weights, trace, int(message.header.get("steps", len(trace))))

    def _directory_output(self, header: dict) -> TrainOutput:
        """The directory the child named, once none of its processes is left to change it: moved, then checked."""
        if "directory" not in header:
            raise channel.ChannelError("the child named no output directory")
        if not wait_group_gone(self.pid):
            raise channel.ChannelError("the candidate's processes did not end, so its output directory was not read")
        try:
            path = channel.take_directory(self._output_root(), header["directory"], self.directory.destination,
                                          self.directory.limit_bytes, self.directory.names)
        except OSError as exc:
            raise channel.ChannelError(f"the output directory could not be taken: {exc}") from None
        trace = channel.decode_loss_trace(header)
        return TrainOutput({}, trace, int(header.get("steps", len(trace))), output_dir=str(path))

    def _output_root(self) -> Path:
        """Where the dead child's output is: its scratch tmpfs, through the descriptor it handed over before any
        candidate code ran; the scratch on disk only where no mount namespace was made (the user's opt-out)."""
        if self.handoff_socket is None:
            return self.scratch
        if self.scratch_fd is None:
            self.scratch_fd = handoff.receive_scratch(self.handoff_socket)
        if self.scratch_fd is not None:
            return handoff.view(self.scratch_fd)
        if "mount_namespace" in self.sandbox:
            raise channel.ChannelError("the child's scratch was not handed over, so its output was not read")
        return self.scratch

    def release_scratch(self) -> None:
        if self.scratch_fd is not None:
            os.close(self.scratch_fd)
            self.scratch_fd = None
        if self.handoff_socket is not None:
            self.handoff_socket.close()

    def _child_error(self, header: dict) -> ChildOutcome:
        self._end()
        stage = header.get("stage") if header.get("stage") in _CHILD_STAGES else self.stage
        message = str(header.get("message", "unknown error"))[:1000]
        if header.get("sandbox"):
            return ChildOutcome("failed", "static", message)
        message += self._hint(message)
        status = "invalid" if stage in ("static", "contract") else "failed"
        return ChildOutcome(status, stage, f"{stage}: {message}", sandbox=self.sandbox,
                            probe_fitness=self.probe_fitness)

    def _hint(self, message: str) -> str:
        """Which sandbox limit a bare OS error comes from, so the proposer knows what to change."""
        if "[Errno 27]" in message:  # EFBIG: Python ignores SIGXFSZ, so the size limit surfaces as an OSError
            return f" (the output limit is {bytes_text(self.limits.output_bytes)}: print or write less)"
        if "MemoryError" in message or "Cannot allocate memory" in message:
            return f" (the memory limit is {bytes_text(self.limits.memory_bytes)})"
        if "[Errno 1] Operation not permitted" in message:
            return (" (the sandbox allows only the system calls training needs: no new processes, programs, sockets,"
                    " links, shared memory or signals to others)")
        if "[Errno 28] No space left on device" in message and self.limits.scratch_bytes:
            return f" (the working directory holds at most {bytes_text(self.limits.scratch_bytes)} in all)"
        if "[Errno 13] Permission denied" in message:
            return " (the sandbox allows writing only in the working directory, reading only Python's own files)"
        return ""

    def _timeout(self) -> ChildOutcome:
        self.cpu_seconds = group_processor_seconds(self.pid)
        kill_group(self.pid, self.limits.term_grace_s)
        self.alive = False
        if self.starting:  # our own start-up, before any candidate code: not the candidate's fault, but no result
            return ChildOutcome("failed", "static", f"the spawned process did not start within {SPAWN_STARTUP_S:g}"
                                                    " s (loading the task's training data and warming up)")
        return ChildOutcome("timeout", self.stage, f"timeout: no result after {self.limits.timeout_s:g} s; "
                                                   "the process group was killed", sandbox=self.sandbox,
                            probe_fitness=self.probe_fitness)

    def _died(self) -> ChildOutcome:
        status = self._end()
        if os.WIFSIGNALED(status):
            reason = signal_reason(os.WTERMSIG(status), self.limits)
        else:
            reason = f"it exited with code {os.WEXITSTATUS(status)} without sending a result"
        return self._fail(self.stage, f"the candidate's process ended early: {reason}")

    def _fail(self, stage: str, reason: str) -> ChildOutcome:
        self._end()
        return ChildOutcome("failed", stage, f"{stage}: {reason}", sandbox=self.sandbox,
                            probe_fitness=self.probe_fitness)

    def _end(self) -> int:
        if not self.alive:
            return 0
        self.alive = False
        self.cpu_seconds = group_processor_seconds(self.pid)
        return end_child(self.pid)

