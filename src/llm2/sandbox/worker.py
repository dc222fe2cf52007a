"""Warm worker processes: ``python -m llm2.sandbox.worker CONFIG`` and the handle an executor drives it with.

A worker imports torch and loads the task's world once, then serves jobs one at a time over JSON lines
(stdin in, a private copy of stdout out), each in a fresh forked child (``SandboxRunner``). Its handle, in the
executor's process, enforces an outer deadline: a worker that dies or hangs is killed, its job reported as failed
with the reason, and a fresh worker is started for the next job.
"""

from __future__ import annotations

import base64
import ctypes
import dataclasses
import json
import os
import pickle
import select
import shutil
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
                result = EvalResult("failed", "train", f"worker error: {type(exc).__name__}: {exc}",
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

    def __init__(self, config: WorkerConfig, parent_dir: str | None = None):
        self.config = config
        self.parent_dir = parent_dir  # where this handle's own directory goes (default: the system's temp dir)
        self.process: subprocess.Popen | None = None
        self._buffer = b""
        self._home: Path | None = None  # the worker's log and scratch root; removed with the worker
        self.busy = False

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def _log_path(self) -> Path | None:
        return None if self._home is None else self._home / "worker.log"

    def start(self) -> None:
        """Start the worker and wait until its world is loaded; raises WorkerGone with the reason on failure."""
        self.stop()
        self._home = Path(tempfile.mkdtemp(prefix="llm2-worker-", dir=self.parent_dir))
        config = dataclasses.replace(self.config, scratch_root=str(self._home))
        with open(self._log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llm2.sandbox.worker", config.encode()],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                env={**worker_environment(), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        self._buffer = b""
        self._expect(("ready",), time.monotonic() + STARTUP_TIMEOUT_S)

    def run(self, job: EvalJob) -> EvalResult:
        """One evaluation; a worker fault becomes a failed result and the worker is replaced next time."""
        started = time.perf_counter()
        self.busy = True
        try:
            if self.process is None or self.process.poll() is not None:
                self.start()
            self._send(job_to_dict(job))
            message = self._expect(("started", "result"), time.monotonic() + STARTUP_TIMEOUT_S)
            if message["event"] == "started":  # the world is ready: from here the candidate's clock runs
                limits = self.config.limits
                deadline = time.monotonic() + limits.timeout_s + limits.term_grace_s + self.config.answer_grace_s
                message = self._expect(("result",), deadline)
            return result_from_dict(message["result"])
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
        """Kill the worker's process group, reap it (its sandboxed child dies with it: PDEATHSIG) and remove its
        directory, scratch leftovers included."""
        if self.process is not None:
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
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.stdin.close()  # EOF: the worker cleans its scratch root and exits
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.stop()

    # -- the JSON-lines protocol -------------------------------------------------------------------------------
    def _send(self, message: dict) -> None:
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerGone(self._death_reason()) from None

    def _expect(self, events: tuple[str, ...], deadline: float) -> dict:
        while True:
            message = self._read_line(deadline)
            if message.get("event") in events:
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
