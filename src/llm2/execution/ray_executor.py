"""The Ray executor: each evaluation is a Ray task with its own resource request, run in the same sandbox.

Inside a Ray worker process the task drives a warm sandbox worker (``llm2.sandbox.worker``) that is started on
the first task and kept for the next ones, so training data is loaded once per Ray worker process, and scores what
it hands back in that Ray process (trusted: it never runs candidate code). Candidate code still runs only in a
confined child of the sandbox worker — never in Ray's own processes. Ray is optional (``pip install llm2[ray]``)
and imported only here.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shutil

from llm2.evaluation import EvalJob, EvalResult, job_from_dict, job_to_dict, result_from_dict, result_to_dict
from llm2.execution.base import ExecutorBase
from llm2.sandbox.worker import WorkerConfig
from llm2.task_api.base import Task
from llm2.temp_dirs import make_run_dir

DEFAULT_RESOURCES = {"num_cpus": 1}

# In each Ray worker process: encoded WorkerConfig -> its warm sandbox worker's handle.
_HANDLES: dict = {}


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("the ray executor needs Ray: pip install 'llm2[ray]' (or pip install ray)") from None
    return ray


def evaluate_in_ray_worker(encoded_config: str, job: dict) -> dict:
    """The body of the Ray task (runs in a Ray worker process)."""
    from llm2.execution.handle import WorkerHandle
    from llm2.execution.scoring import ScoringSide
    from llm2.task_api.registry import load_task

    handle = _HANDLES.get(encoded_config)
    if handle is None:
        config = WorkerConfig.decode(encoded_config)
        # beneath the driver's directory when this node shares its file system (a local instance), else in /tmp;
        # the handle gives the worker a home of its own there (WorkerHandle.start), whatever config.home says
        shared = config.home if config.home and os.path.isdir(config.home) else None
        handle = _HANDLES[encoded_config] = WorkerHandle(config, ScoringSide(load_task(config.task_spec)),
                                                         parent_dir=shared)
    record = job_from_dict(job, handle.scoring.task)
    # Trusted here: build what this node's cache lacks, and publish what the worker needs to find it (the world
    # secret's fingerprint) before the worker starts; done once, later calls only find the files there.
    handle.scoring.task.prepare(record.setting.task)
    return result_to_dict(handle.run(record))


class RayExecutor(ExecutorBase):
    def __init__(self, config: WorkerConfig, task: Task, address: str | None = None,
                 resources: dict | None = None, static_checks: bool = True):
        ray = self._ray = _import_ray()
        self.contract, self.static_checks = task.contract, static_checks
        self._root = make_run_dir(prefix="llm2-ray-")  # after sweeping killed runs' directories
        self._encoded = dataclasses.replace(config, home=self._root).encode()
        self._started_ray = not ray.is_initialized()
        if self._started_ray:
            ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        options = {**DEFAULT_RESOURCES, **(resources or {})}
        self._remote = ray.remote(max_retries=0, **options)(evaluate_in_ray_worker)
        self._closed = False

    def submit(self, job: EvalJob) -> concurrent.futures.Future[EvalResult]:
        if self._closed:
            raise RuntimeError("the executor is closed")
        rejection = self.static_rejection(job)
        if rejection is not None:
            return rejection
        outer: concurrent.futures.Future[EvalResult] = concurrent.futures.Future()
        inner = self._remote.remote(self._encoded, job_to_dict(job)).future()

        def finish(done: concurrent.futures.Future) -> None:
            try:
                outer.set_result(result_from_dict(done.result()))
            except Exception as exc:  # noqa: BLE001 - a Ray fault (worker lost, node died) is a failed evaluation
                outer.set_result(EvalResult("failed", "train", f"ray: {type(exc).__name__}: {str(exc)[:300]}"))

        inner.add_done_callback(finish)
        return outer

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._started_ray:
            self._ray.shutdown()  # ends the Ray workers; their sandbox workers die with them (PDEATHSIG)
        shutil.rmtree(self._root, ignore_errors=True)
