"""The Ray executor: each evaluation is a Ray task with its own resource request, run in the same sandbox.

Inside a Ray worker process the task drives a warm sandbox worker (``llm2.sandbox.worker``) that is started on
the first task and kept for the next ones, so the world is loaded once per Ray worker process, and candidate code
still runs only in a forked, confined child — never in Ray's own processes. Ray is optional (``pip install
llm2[ray]``) and imported only here.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shutil
import tempfile

from llm2.evaluation import EvalResult
from llm2.execution.base import EvalJob, ExecutorBase, job_from_dict, job_to_dict, result_from_dict, \
    result_to_dict, static_rejection
from llm2.sandbox.worker import WorkerConfig, WorkerHandle
from llm2.tasks.base import Contract

DEFAULT_RESOURCES = {"num_cpus": 1}

# In each Ray worker process: encoded WorkerConfig -> its warm sandbox worker.
_HANDLES: dict[str, WorkerHandle] = {}


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("the ray executor needs Ray: pip install 'llm2[ray]' (or pip install ray)") from None
    return ray


def evaluate_in_ray_worker(encoded_config: str, job: dict) -> dict:
    """The body of the Ray task (runs in a Ray worker process)."""
    handle = _HANDLES.get(encoded_config)
    if handle is None:
        config = WorkerConfig.decode(encoded_config)
        # beneath the driver's directory when this node shares its file system (a local instance), else in /tmp
        shared = config.scratch_root if config.scratch_root and os.path.isdir(config.scratch_root) else None
        handle = _HANDLES[encoded_config] = WorkerHandle(config, parent_dir=shared)
    return result_to_dict(handle.run(job_from_dict(job)))


class RayExecutor(ExecutorBase):
    def __init__(self, config: WorkerConfig, contract: Contract, address: str | None = None,
                 resources: dict | None = None):
        ray = self._ray = _import_ray()
        self._contract = contract
        self._static_checks = config.static_checks
        self._root = tempfile.mkdtemp(prefix="llm2-ray-")
        self._encoded = dataclasses.replace(config, scratch_root=self._root).encode()
        self._started_ray = not ray.is_initialized()
        if self._started_ray:
            ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        options = {**DEFAULT_RESOURCES, **(resources or {})}
        self._remote = ray.remote(max_retries=0, **options)(evaluate_in_ray_worker)
        self._closed = False

    def submit(self, job: EvalJob) -> concurrent.futures.Future[EvalResult]:
        if self._closed:
            raise RuntimeError("the executor is closed")
        rejection = static_rejection(job, self._contract) if self._static_checks else None
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
