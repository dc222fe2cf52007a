"""Supervise one confined child: read its messages until a result, a death or the deadline; have its probe and its
rung pauses judged; validate the tensors it sends back (``channel``) against the task's output spec."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from llm2.curves import clean_curves
from llm2.sandbox import channel, handoff
from llm2.sandbox.child import CONTINUE, OUTPUT_FILE
from llm2.sandbox.limits import SPAWN_STARTUP_S, SandboxLimits, bytes_text, end_child, kill_group, signal_reason
from llm2.sandbox.processes import group_processor_seconds, wait_group_gone
from llm2.task_api.base import TrainOutput

_CHILD_STAGES = ("static", "contract", "probe", "train")

# judge_probe(output) -> (reason to stop, or None to go on; the probe's fitness when it was scored)
ProbeJudge = Callable[[TrainOutput], tuple["str | None", "float | None"]]
# judge_pause(budget, output) -> train on (True) or stop at this rung's cut (False)
PauseJudge = Callable[[float, TrainOutput], bool]
STOP = b"s"  # any byte but CONTINUE stops the child's training


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


class Supervisor:
    """Reads the child's messages until a result, a death or the deadline; answers the probe and the pauses."""

    def __init__(self, pid: int, result_fd: int, control_fd: int, limits: SandboxLimits, cascade: bool,
                 spec: channel.WeightsSpec, scratch: Path, probe_fraction: float, judge_probe: ProbeJudge,
                 startup_s: float = 0.0, directory: DirectoryOutput | None = None,
                 handoff_socket: socket.socket | None = None, pauses: tuple[float, ...] = (),
                 judge_pause: PauseJudge | None = None):
        self.pauses_left, self.judge_pause = list(pauses), judge_pause
        self.paused_at: float | None = None  # the rung's budget where the run was told to stop
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
            elif kind == "pause":
                verdict = self._judge_pause(message)
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

    def _judge_pause(self, message: channel.Message) -> ChildOutcome | None:
        """A rung's cut: its weights to the judge, which says whether the run trains on. Asked only where asked for
        (the header is the candidate's process's word: untrusted), once per budget, in order."""
        budget = message.header.get("budget")
        if not self.pauses_left or budget != self.pauses_left[0] or self.judge_pause is None:
            return self._fail(self.stage, "the run paused where it was not asked to")
        self.pauses_left.pop(0)
        started = time.monotonic()
        try:
            go_on = self.judge_pause(float(budget), self._output(message))
        except channel.ChannelError as exc:
            return self._fail(self.stage, str(exc))
        try:
            os.write(self.control_fd, CONTINUE if go_on else STOP)
        except BrokenPipeError:
            pass  # the child is gone; the next read reports how it ended
        self.deadline += time.monotonic() - started
        if not go_on:
            self.paused_at = float(budget)
        return None

    def _final(self, message: channel.Message) -> ChildOutcome:
        self._end()  # dead before anything it wrote is read
        header = message.header
        stop_reason = header.get("stop_reason")
        curves = clean_curves(header.get("curves"))
        if self.paused_at is not None:  # stopped at a rung's cut, which the judge has already had
            return ChildOutcome("ok", "rung", None, None, self.sandbox, self.probe_fitness, curves=curves)
        if stop_reason:
            stage = "train" if self.probe_passed or not self.cascade else "probe"
            return replace(self._fail(stage, str(stop_reason)[:500]), curves=curves)
        if self.pauses_left:  # a rung's cut never handed over: the result is not what was asked for
            return self._fail("train", f"the run ended without pausing at budget {self.pauses_left[0]:g}")
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

