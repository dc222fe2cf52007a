"""Warm worker processes: ``python -m llm2.sandbox.worker CONFIG`` and the handle an executor drives it with.

A worker imports torch and loads the task's world once, then serves jobs one at a time over JSON lines
(stdin in, a private copy of stdout out), each in a fresh forked child (``SandboxRunner``). Its handle, in the
executor's process, enforces an outer deadline: a worker that dies or hangs is killed, its job reported as failed
with the reason, and a fresh worker is started for the next job.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from llm2.evaluation import EvalResult
from llm2.execution.base import EvalJob, job_from_dict, job_to_dict, result_from_dict, result_to_dict
from llm2.sandbox.limits import SandboxLimits

STARTUP_TIMEOUT_S = 900.0  # a first world build takes about half a minute on two busy cores; be generous


@dataclass(frozen=True)
class WorkerConfig:
    task_name: str
    task_options: dict = field(default_factory=dict)
    limits: SandboxLimits = SandboxLimits()
    cascade: bool = True
    static_checks: bool = True
    scratch_root: str | None = None
    answer_grace_s: float = 120.0  # beyond the candidate's timeout, for scoring (trusted) before a worker is hung

    def encode(self) -> str:
        """For the worker's command line. Pickle is fine here: both ends are llm2's own trusted processes, and
        task options may be dataclasses (e.g. a WorldConfig)."""
        return base64.b64encode(pickle.dumps(self)).decode()

    @classmethod
    def decode(cls, text: str) -> "WorkerConfig":
        config = pickle.loads(base64.b64decode(text))  # noqa: S301 - written by our own executor, see encode
        if not isinstance(config, cls):
            raise TypeError("not a WorkerConfig")
        return config


# -- the worker process ------------------------------------------------------------------------------------------
def serve(config: WorkerConfig, jobs_in, replies_fd: int) -> None:
    from llm2.sandbox.runner import SandboxOptions, SandboxRunner
    from llm2.tasks import get_task

    task = get_task(config.task_name, **config.task_options)
    runner = SandboxRunner(task, config.scratch_root)
    options = SandboxOptions(config.limits, config.cascade, config.static_checks)
    try:
        runner.prepare(task.default_setting)
        _reply(replies_fd, {"event": "ready", "pid": os.getpid()})
        for line in jobs_in:
            job = job_from_dict(json.loads(line))
            started = time.perf_counter()
            try:
                runner.prepare(job.setting)
                _reply(replies_fd, {"event": "started"})
                result = runner.evaluate(job.code, job.setting, options)
            except Exception as exc:  # noqa: BLE001 - a fault of trusted code: report it, keep serving
                result = EvalResult("failed", "score", f"worker error: {type(exc).__name__}: {exc}",
                                    seconds=time.perf_counter() - started)
            _reply(replies_fd, {"event": "result", "result": result_to_dict(result)})
    finally:
        runner.close()


def _reply(fd: int, message: dict) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def main() -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the executor
    replies_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints from libraries must not corrupt the reply stream
    serve(WorkerConfig.decode(sys.argv[1]), sys.stdin, replies_fd)


# -- the executor's side -----------------------------------------------------------------------------------------
_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE", "SESSION")


def worker_environment() -> dict[str, str]:
    """This process's environment without anything that looks like a secret (the proposer's API key, above all):
    a candidate that read its environment could otherwise put it into an error message."""
    return {name: value for name, value in os.environ.items()
            if not any(marker in name.upper() for marker in _SECRET_MARKERS)}


class WorkerGone(Exception):
    pass


class WorkerHandle:
    """Starts, feeds and, when needed, replaces one worker process."""

    def __init__(self, config: WorkerConfig, log_dir: str | None = None):
        self.config = config
        self.log_dir = Path(log_dir or tempfile.gettempdir())
        self.process: subprocess.Popen | None = None
        self._buffer = b""
        self._log_path: Path | None = None
        self.busy = False

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> None:
        """Start the worker and wait until its world is loaded; raises WorkerGone with the reason on failure."""
        self.stop()
        handle, log = tempfile.mkstemp(prefix="llm2-worker-", suffix=".log", dir=self.log_dir)
        self._log_path = Path(log)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llm2.sandbox.worker", self.config.encode()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=handle, start_new_session=True,
            env={**worker_environment(), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        os.close(handle)
        self._buffer = b""
        self._expect("ready", time.monotonic() + STARTUP_TIMEOUT_S)

    def run(self, job: EvalJob) -> EvalResult:
        """One evaluation; a worker fault becomes a failed result and the worker is replaced next time."""
        started = time.perf_counter()
        self.busy = True
        try:
            if self.process is None or self.process.poll() is not None:
                self.start()
            self._send(job_to_dict(job))
            self._expect("started", time.monotonic() + STARTUP_TIMEOUT_S)
            limits = self.config.limits
            deadline = time.monotonic() + limits.timeout_s + limits.term_grace_s + self.config.answer_grace_s
            return result_from_dict(self._expect("result", deadline)["result"])
        except WorkerGone as exc:
            self.stop()
            return EvalResult("failed", "train", f"worker failure: {exc}; the worker was replaced",
                              seconds=time.perf_counter() - started)
        finally:
            self.busy = False

    def interrupt(self) -> None:
        """From another thread: kill the worker if it is running a job (``run`` then reports the failure)."""
        process = self.process
        if self.busy and process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Kill the worker's process group and reap it (its sandboxed child dies with it: PDEATHSIG)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                stream.close()
        self.process = None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.stdin.close()  # EOF: the worker cleans its scratch root and exits
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.stop()
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)

    # -- the JSON-lines protocol -------------------------------------------------------------------------------
    def _send(self, message: dict) -> None:
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerGone(self._death_reason()) from None

    def _expect(self, event: str, deadline: float) -> dict:
        while True:
            message = self._read_line(deadline)
            if message.get("event") == event:
                return message

    def _read_line(self, deadline: float) -> dict:
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WorkerGone("the worker gave no answer before its deadline (it hung) and was killed")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise WorkerGone(self._death_reason())
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _death_reason(self) -> str:
        try:
            code = self.process.wait(timeout=5) if self.process else None
        except subprocess.TimeoutExpired:
            code = None
        how = ("closed its output" if code is None else
               f"was killed by signal {-code}" if code < 0 else f"exited with code {code}")
        tail = ""
        if self._log_path is not None and self._log_path.exists():
            text = self._log_path.read_text(errors="replace").strip().splitlines()
            tail = f" ({text[-1][:300]})" if text else ""
        return f"the worker process {how}{tail}"


if __name__ == "__main__":
    # run the imported module's main, not this __main__ copy, so pickled WorkerConfig classes match
    from llm2.sandbox.worker import main as worker_main

    worker_main()
