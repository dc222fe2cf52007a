"""The executor's side of one warm worker: start it, feed it jobs, score what it hands back, replace it if needed.

The handle enforces an outer deadline: a worker that dies or hangs is killed, its job reported as failed with the
reason, and a fresh worker is started for the next job. Weights arrive as safetensors files the worker writes into
the handle's own directory; the handle scores them with its ``ScoringSide`` (trusted, in this process) and deletes them.
A run asked to pause at a rung's cut (``EvalJob.pauses``) hands its weights over there: the handle scores them and
asks the job's ``on_pause`` whether the run trains on; stopped there, the cut's score is the job's result.
A task whose output is a directory (``Runtime(output="directory")``) has it arrive there too, already checked by the
worker: the scorer gets ``TrainOutput(weights={}, ..., output_dir=its path)``, and the directory is removed after
scoring, or kept like a weights file (under the job's key, without the suffix) when the executor keeps weights.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from llm2.curves import clean_curves
from llm2.evaluation import EvalJob, EvalResult, job_to_dict
from llm2.execution.scoring import ScoringSide
from llm2.sandbox.environment import stripped_environment
from llm2.sandbox.limits import SPAWN_STARTUP_S
from llm2.sandbox.worker import WorkerConfig
from llm2.task_api.base import TrainOutput
from llm2.temp_dirs import marked_dir

STARTUP_TIMEOUT_S = 900.0  # a first world build takes about half a minute on two busy cores; be generous


def checkpoint_file_name(key: str) -> str:
    """The file a kept job's weights go to: its key ("12:0", candidate 12 at seed 0) made a safe file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", key) + ".safetensors"


class WorkerGone(Exception):
    pass


def remove_path(path: Path) -> None:
    """A file or a directory tree, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class WorkerHandle:
    """Starts, feeds and, when needed, replaces one worker process."""

    def __init__(self, config: WorkerConfig, scoring: ScoringSide, parent_dir: str | None = None,
                 environment: dict[str, str] | None = None, keep_dir: Path | None = None):
        self.config, self.scoring = config, scoring
        self.parent_dir = parent_dir  # where this handle's own directory goes (default: the system's temp dir)
        self.environment = dict(environment or {})  # set in the worker's environment (e.g. CUDA_VISIBLE_DEVICES)
        self.keep_dir = keep_dir  # where the weights of scored jobs are kept, by key (None: deleted once scored)
        self.process: subprocess.Popen | None = None
        self._buffer = b""
        self._home: Path | None = None  # the worker's log, scratch root and weight files; removed with the worker
        self.busy = False

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def _log_path(self) -> Path | None:
        return None if self._home is None else self._home / "worker.log"

    def start(self) -> None:
        """Start the worker and wait until its training data is loaded; raises WorkerGone with the reason."""
        self.stop()
        self._home = Path(marked_dir("llm2-worker-", self.parent_dir))
        os.chmod(self._home, 0o711)  # the candidate (another user) passes through to its scratch, lists nothing
        config = dataclasses.replace(self.config, home=str(self._home))
        with open(self._log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llm2.sandbox.worker", config.encode()],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                env={**stripped_environment(), **self.environment})
        self._buffer = b""
        self._expect(("ready",), time.monotonic() + STARTUP_TIMEOUT_S)

    def run(self, job: EvalJob) -> EvalResult:
        """One evaluation; a worker fault becomes a failed result and the worker is replaced next time."""
        started = time.perf_counter()
        self.busy = True
        try:
            if self.process is None or self.process.poll() is not None:
                self.start()
            return self._run(job, started)
        except WorkerGone as exc:
            self.stop()
            return EvalResult("failed", "train", f"worker failure: {exc}; the worker was replaced",
                              seconds=time.perf_counter() - started)
        finally:
            self.busy = False

    def _run(self, job: EvalJob, started: float) -> EvalResult:
        self._send({"job": job_to_dict(job)})
        message = self._expect(("started", "result"), time.monotonic() + STARTUP_TIMEOUT_S)
        limits = self.config.limits
        deadline = time.monotonic() + limits.timeout_s + limits.term_grace_s + self.config.answer_grace_s
        if self.scoring.task.runtime(job.setting.task).start == "spawn":
            deadline += SPAWN_STARTUP_S  # the candidate's process starts an interpreter and loads its data first
        cut: EvalResult | None = None  # the rung's cut where the run was told to stop
        scoring_cpu = 0.0  # the scorer runs in this thread, on one torch thread: its thread time is its processor time
        while message["event"] != "result":  # from "started" on, the candidate's clock runs
            message = self._expect(("probe", "pause", "result"), deadline)
            scoring_started, cpu_before = time.monotonic(), time.thread_time()
            if message["event"] == "probe":
                reason, fitness = self.scoring.judge_probe(job, self._take(message))
                self._send({"verdict": "continue" if reason is None else "stop", "reason": reason,
                            "fitness": fitness})
            elif message["event"] == "pause":
                go_on, cut = self._pause(job, message, started)
                self._send({"verdict": "continue" if go_on else "stop"})
            scoring_cpu += time.thread_time() - cpu_before
            deadline += time.monotonic() - scoring_started
        seconds = time.perf_counter() - started
        worker_cpu = float(message.get("cpu_seconds") or 0.0)
        sandbox = tuple(message.get("sandbox") or ())
        probe = message.get("probe_fitness")
        curves = clean_curves(message.get("curves"))
        if message["status"] != "ok":
            return EvalResult(message["status"], message["stage"], message.get("error"), seconds=seconds,
                              probe_fitness=probe, sandbox=sandbox, curves=curves,
                              cpu_seconds=worker_cpu + scoring_cpu)
        if message["stage"] == "rung":  # stopped at a rung's cut: its score is the result, as a rung's run gives
            if cut is None:
                raise WorkerGone("the worker reported a stop at a rung it was never asked about")
            return dataclasses.replace(cut, seconds=seconds, probe_fitness=probe, sandbox=sandbox, curves=curves,
                                       cpu_seconds=worker_cpu + scoring_cpu)
        if job.fingerprint_only:  # nothing was trained: nothing to score
            return EvalResult("ok", "fingerprint", None, seconds=seconds, sandbox=sandbox,
                              fingerprint=tuple(float(v) for v in message.get("fingerprint") or ()),
                              cpu_seconds=worker_cpu)
        keep = self.keep_dir is not None
        output = self._take(message, remove=not keep)
        cpu_before = time.thread_time()
        try:
            metrics, error = self.scoring.score(job, output)
        finally:
            scoring_cpu += time.thread_time() - cpu_before
            if output.output_dir is not None and not keep:
                shutil.rmtree(output.output_dir, ignore_errors=True)
        if keep:
            self._keep(Path(output.output_dir or message["path"]), job.key if metrics is not None else None)
        if metrics is None:
            return EvalResult("failed", "score", error, seconds=time.perf_counter() - started, probe_fitness=probe,
                              sandbox=sandbox, curves=curves, cpu_seconds=worker_cpu + scoring_cpu)
        return EvalResult("ok", "done", None, metrics, time.perf_counter() - started, tuple(output.loss_trace),
                          probe, sandbox, curves=curves, cpu_seconds=worker_cpu + scoring_cpu)

    def _pause(self, job: EvalJob, message: dict, started: float) -> tuple[bool, EvalResult | None]:
        """A rung's cut: score its weights as that rung's evaluation would, and ask the job's ``on_pause`` whether
        the run trains on (without one, as under Ray, it stops: the rung is then trained again if promoted)."""
        budget = float(message["budget"])
        keep = self.keep_dir is not None
        output = self._take(message, remove=not keep)
        metrics, error = self.scoring.score(job, output)
        seconds = time.perf_counter() - started
        cut = (EvalResult("ok", "done", None, metrics, seconds, tuple(output.loss_trace)) if metrics is not None
               else EvalResult("failed", "score", error, seconds=seconds))
        go_on = metrics is not None and job.on_pause is not None and job.on_pause(budget, cut)
        if keep:  # a run stopped here keeps the cut's weights, as a rung's own run would
            self._keep(Path(message["path"]), job.key if metrics is not None and not go_on else None)
        return go_on, cut

    def _take(self, message: dict, remove: bool = True) -> TrainOutput:
        """The weights file the worker wrote (in this handle's own directory), read and (unless kept) removed; or
        the output directory it moved there, left in place for the scorer."""
        from safetensors.torch import load_file

        trace = [float(v) for v in message.get("loss_trace") or []]
        if "directory" in message:
            directory = Path(message["directory"])
            if self._home is None or directory.parent != self._home or not directory.is_dir() \
                    or directory.is_symlink():
                raise WorkerGone(f"the worker named an output directory outside its own: {directory}")
            return TrainOutput({}, trace, int(message.get("steps") or len(trace)), output_dir=str(directory))
        path = Path(message["path"])
        if self._home is None or path.parent != self._home:
            raise WorkerGone(f"the worker named a weights file outside its directory: {path}")
        try:
            weights = load_file(str(path))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if remove:
            path.unlink(missing_ok=True)
        return TrainOutput(weights, trace, int(message.get("steps") or len(trace)))

    def _keep(self, path: Path, key: str | None) -> None:
        """Move a scored weights file (or output directory) to the keep directory under its job's key (None: the
        score failed, drop it). It appears there whole or not at all: moved under a temporary name, then renamed."""
        directory = path.is_dir()
        if key is None:
            remove_path(path)
            return
        name = checkpoint_file_name(key)
        final = self.keep_dir / (name.removesuffix(".safetensors") if directory else name)
        temporary = final.with_name(final.name + ".tmp")
        try:
            self.keep_dir.mkdir(parents=True, exist_ok=True)
            remove_path(temporary)
            shutil.move(str(path), str(temporary))
            if directory:
                remove_path(final)  # os.replace cannot replace a directory that holds files
            os.replace(temporary, final)
        except OSError as exc:  # the candidate was scored; only its checkpoint is lost (export says so)
            print(f"llm2: could not keep the weights of job {key}: {exc}", file=sys.stderr)
        finally:
            remove_path(path)
            remove_path(temporary)

    def interrupt(self) -> None:
        """From another thread: kill the worker if it is running a job (``run`` then reports the failure)."""
        process = self.process
        if self.busy and process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Kill the worker's process group, reap it (its candidate's process dies with it: PDEATHSIG) and remove
        its directory, scratch leftovers included."""
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
