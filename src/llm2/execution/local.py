"""The local executor: a pool of warm sandbox workers on this machine, fed from one queue."""

from __future__ import annotations

import concurrent.futures
import queue
import shutil
import threading
from pathlib import Path

from llm2.evaluation import EvalJob, EvalResult
from llm2.execution.base import ExecutorBase
from llm2.temp_dirs import make_run_dir
from llm2.execution.handle import WorkerGone, WorkerHandle
from llm2.execution.scoring import ScoringSide
from llm2.sandbox.worker import WorkerConfig
from llm2.task_api.base import Task

_STOP = object()


class LocalExecutor(ExecutorBase):
    """``environments``: one per worker, set in its environment (one worker per GPU: CUDA_VISIBLE_DEVICES); when
    given, there are that many workers. ``keep_dir``: where scored weights are kept by job key (checkpoints)."""

    answers_pauses = True  # the handles run in this process's threads: a job's on_pause is called directly

    def __init__(self, config: WorkerConfig, task: Task, workers: int, static_checks: bool = True,
                 environments: list[dict[str, str]] | None = None, keep_dir: Path | None = None):
        self.contract, self.static_checks = task.contract, static_checks
        self._root = make_run_dir()  # after sweeping the directories of runs that were killed (temp_dirs.py)
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        scoring = ScoringSide(task)
        environments = environments or [{} for _ in range(max(1, workers))]
        self.handles = [WorkerHandle(config, scoring, parent_dir=self._root, environment=environment,
                                     keep_dir=keep_dir) for environment in environments]
        self._threads = [threading.Thread(target=self._serve, args=(h,), name=f"llm2-worker-{i}", daemon=True)
                         for i, h in enumerate(self.handles)]
        for thread in self._threads:
            thread.start()

    def submit(self, job: EvalJob) -> concurrent.futures.Future[EvalResult]:
        rejection = self.static_rejection(job)
        if rejection is not None:
            return rejection
        future: concurrent.futures.Future[EvalResult] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the executor is closed")
            self._queue.put((job, future))
        return future

    def _serve(self, handle: WorkerHandle) -> None:
        try:
            handle.start()
        except WorkerGone:
            pass  # ``run`` retries the start and reports the reason with the first job
        while True:
            item = self._queue.get()
            if item is _STOP:
                handle.close()
                return
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(handle.run(job))
            except BaseException as exc:  # noqa: BLE001 - the future must always complete
                future.set_result(EvalResult("failed", "train", f"executor error: {type(exc).__name__}: {exc}"))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        while True:  # jobs never started end as cancelled
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                item[1].cancel()
        for _ in self._threads:
            self._queue.put(_STOP)
        for handle in self.handles:
            handle.interrupt()  # a job still running ends as a failed result; an idle worker is left to exit
        for thread, handle in zip(self._threads, self.handles):
            thread.join(timeout=30)
            if thread.is_alive():  # pragma: no cover - a thread stuck beyond every deadline
                handle.stop()
        shutil.rmtree(self._root, ignore_errors=True)
