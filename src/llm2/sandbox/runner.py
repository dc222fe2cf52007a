"""One evaluation in a warm process: static checks, fork a confined child, supervise it, score what it sends back.

The process holding a ``SandboxRunner`` (a warm worker) imports torch and loads the task's world once; each
candidate costs a fork, not an interpreter. It never imports candidate code: the child does, and hands back only
tensors through ``llm2.sandbox.channel``; scoring happens here, from validated weights, with the task's own code.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from llm2.candidate import load_function
from llm2.evaluation import EvalResult
from llm2.sandbox import channel
from llm2.sandbox.child import CONTINUE, ChildJob, run_child
from llm2.sandbox.limits import SandboxLimits, end_child, kill_group, prepare_worker, read_roots
from llm2.sandbox.static_checks import static_check, static_error
from llm2.tasks.base import CandidateError, EvalSetting, Metrics, Task, TrainOutput

_SIGNAL_REASONS = {
    signal.SIGXFSZ: "it wrote more than the output limit of {output} (stdout, stderr or a file)",
    signal.SIGXCPU: "it used more than the CPU-time limit of {cpu} s",
    signal.SIGKILL: "it was killed (SIGKILL: the memory or CPU limit, or the system's out-of-memory killer)",
    signal.SIGSEGV: "it crashed (SIGSEGV: segmentation fault, e.g. a C-level stack overflow)",
    signal.SIGABRT: "it aborted (SIGABRT)",
    signal.SIGSYS: "it made a forbidden system call (SIGSYS)",
}


@dataclass(frozen=True)
class SandboxOptions:
    limits: SandboxLimits = SandboxLimits()
    cascade: bool = True
    static_checks: bool = True  # off only in tests of the runtime defences


class SandboxRunner:
    """Evaluates candidate code for one task, one at a time, each in a fresh forked child."""

    def __init__(self, task: Task, scratch_root: str | None = None):
        self.task = task
        self.scratch_root = Path(tempfile.mkdtemp(prefix="llm2-sandbox-", dir=scratch_root))
        self.readable = tuple(read_roots())
        self._specs: dict[tuple, channel.WeightsSpec] = {}
        self.last_defences: dict | None = None  # what ``confine`` reported in the latest child
        prepare_worker()
        torch.set_num_threads(1)

    def close(self) -> None:
        shutil.rmtree(self.scratch_root, ignore_errors=True)

    def prepare(self, setting: EvalSetting) -> None:
        """Load the setting's world and learn the weights' expected layout (once per world)."""
        self.task.prepare(setting)
        self.weights_spec(setting)

    def evaluate(self, code: str, setting: EvalSetting, options: SandboxOptions = SandboxOptions()) -> EvalResult:
        start = time.perf_counter()
        if options.static_checks:
            problems = static_check(code, self.task.contract)
            if problems:
                return EvalResult("invalid", "static", static_error(problems), seconds=time.perf_counter() - start)
        self.prepare(setting)
        result = self._run_child(code, setting, options)
        return EvalResult(result.status, result.stage, result.error, result.metrics,
                          time.perf_counter() - start, result.loss_trace)

    # -- the child's life ----------------------------------------------------------------------------------------
    def _run_child(self, code: str, setting: EvalSetting, options: SandboxOptions) -> EvalResult:
        scratch = Path(tempfile.mkdtemp(prefix="cand-", dir=self.scratch_root))
        result_r, result_w = os.pipe()
        control_r, control_w = os.pipe()
        job = ChildJob(code, setting, options.cascade, scratch, options.limits, self.readable, result_w, control_r)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which always ends in os._exit
            os.close(result_r)
            os.close(control_w)
            run_child(job, self.task)
        os.close(result_w)
        os.close(control_r)
        supervisor = _Supervisor(self, pid, result_r, control_w, setting, options)
        try:
            return supervisor.run()
        finally:
            if supervisor.alive:
                end_child(pid)
            os.close(result_r)
            os.close(control_w)
            shutil.rmtree(scratch, ignore_errors=True)

    def weights_spec(self, setting: EvalSetting) -> channel.WeightsSpec:
        """The state-dict layout a faithful child returns, learnt from one step of a trusted baseline."""
        key = (setting.world_seed, setting.label_noise)
        if key not in self._specs:
            name, code = next(iter(self.task.baselines.items()))
            baseline = load_function(code, self.task.contract, filename=f"<baseline {name}>")
            output = self.task.train(baseline, setting.replace(budget=1e-9))
            self._specs[key] = channel.weights_spec(output.weights)
        return self._specs[key]


class _Supervisor:
    """Reads the child's messages until a result, a death or the deadline; answers the probe."""

    def __init__(self, runner: SandboxRunner, pid: int, result_fd: int, control_fd: int, setting: EvalSetting,
                 options: SandboxOptions):
        self.runner, self.task = runner, runner.task
        self.pid, self.result_fd, self.control_fd = pid, result_fd, control_fd
        self.setting, self.options, self.limits = setting, options, options.limits
        self.spec = runner.weights_spec(setting)
        self.max_payload = channel.payload_limit(self.spec)
        self.stage = "static"
        self.probe_passed = False
        self.alive = True
        self.deadline = time.monotonic() + self.limits.timeout_s

    def run(self) -> EvalResult:
        while True:
            try:
                message = channel.receive(self.result_fd, self.deadline, self.max_payload)
            except channel.ChannelTimeout:
                return self._timeout()
            except channel.ChannelClosed:
                return self._died()
            except channel.ChannelError as exc:
                return self._fail(self.stage, str(exc))
            kind = message.header["kind"]
            if kind == "stage":
                self._note_stage(message.header)
            elif kind == "probe":
                verdict = self._judge_probe(message)
                if verdict is not None:
                    return verdict
            elif kind == "error":
                return self._child_error(message.header)
            else:
                return self._final(message)

    def _note_stage(self, header: dict) -> None:
        if header.get("stage") in ("static", "contract", "probe", "train"):
            self.stage = header["stage"]
        if isinstance(header.get("defences"), dict):
            self.runner.last_defences = header["defences"]

    def _judge_probe(self, message: channel.Message) -> EvalResult | None:
        """Score the probe's weights here; None lets training continue, a result ends the run."""
        started = time.monotonic()
        self.stage = "probe"
        fraction = f"after {self.task.probe_fraction:.0%} of training"
        try:
            output = self._output(message)
            metrics = self.task.score(output, self.setting, quick=True)
            reason = self.task.collapse_reason(metrics, self.setting)
        except (channel.ChannelError, CandidateError) as exc:
            reason = str(exc)
        if reason is None and not math.isfinite(metrics.fitness):
            reason = "the probe's score is not finite"
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

    def _final(self, message: channel.Message) -> EvalResult:
        self._end()
        header = message.header
        stop_reason = header.get("stop_reason")
        if stop_reason:
            stage = "train" if self.probe_passed or not self.options.cascade else "probe"
            return self._fail(stage, str(stop_reason)[:500])
        try:
            output = self._output(message)
            metrics = self.task.score(output, self.setting)
        except (channel.ChannelError, CandidateError) as exc:
            return self._fail("score", str(exc))
        if not math.isfinite(metrics.fitness):
            return self._fail("score", "the score is not finite")
        return EvalResult("ok", "done", None, _plain_metrics(metrics), loss_trace=tuple(output.loss_trace))

    def _output(self, message: channel.Message) -> TrainOutput:
        weights = channel.decode_weights(message.payload, self.spec)
        trace = channel.decode_loss_trace(message.header)
        return TrainOutput(weights, trace, int(message.header.get("steps", len(trace))))

    def _child_error(self, header: dict) -> EvalResult:
        self._end()
        stage = header.get("stage") if header.get("stage") in ("static", "contract", "probe", "train") \
            else self.stage
        message = str(header.get("message", "unknown error"))[:1000]
        message += self._hint(message)
        status = "invalid" if stage in ("static", "contract") else "failed"
        return EvalResult(status, stage, f"{stage}: {message}")

    def _hint(self, message: str) -> str:
        """Which sandbox limit a bare OS error comes from, so the proposer knows what to change."""
        if "[Errno 27]" in message:  # EFBIG: Python ignores SIGXFSZ, so the size limit surfaces as an OSError
            return f" (the output limit is {_bytes_text(self.limits.output_bytes)}: print or write less)"
        if "MemoryError" in message or "Cannot allocate memory" in message:
            return f" (the memory limit is {_bytes_text(self.limits.memory_bytes)})"
        if "[Errno 1] Operation not permitted" in message:
            return " (the sandbox forbids new processes, programs, network sockets and signals)"
        if "[Errno 13] Permission denied" in message:
            return " (the sandbox allows writing only in the working directory, reading only Python's own files)"
        return ""

    def _timeout(self) -> EvalResult:
        kill_group(self.pid, self.limits.term_grace_s)
        self.alive = False
        return EvalResult("timeout", self.stage, f"timeout: no result after {self.limits.timeout_s:g} s; "
                                                 "the process group was killed")

    def _died(self) -> EvalResult:
        status = self._end()
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            template = _SIGNAL_REASONS.get(number, f"it was killed by signal {number}")
            reason = template.format(output=_bytes_text(self.limits.output_bytes), cpu=self.limits.cpu_seconds)
        else:
            reason = f"it exited with code {os.WEXITSTATUS(status)} without sending a result"
        return self._fail(self.stage, f"the candidate's process ended early: {reason}")

    def _fail(self, stage: str, reason: str) -> EvalResult:
        self._end()
        return EvalResult("failed", stage, f"{stage}: {reason}")

    def _end(self) -> int:
        if not self.alive:
            return 0
        self.alive = False
        return end_child(self.pid)


def _plain_metrics(metrics: Metrics) -> Metrics:
    """Plain floats only, so results cross process boundaries as JSON unchanged."""
    return Metrics(float(metrics.fitness), None if metrics.kl is None else float(metrics.kl),
                   {str(k): float(v) for k, v in metrics.extra.items()})


def _bytes_text(count: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:g} {unit}"
    return f"{count} bytes"
