"""The total a candidate can write, wherever it can write (issue 19: ``RLIMIT_FSIZE`` caps each file, not the total).

Every writable place in the candidate's mount namespace is its scratch tmpfs, size-capped; that holds for a task
whose output is a file or a directory as well: the child writes its output into the tmpfs, hands the tmpfs to its
worker before any candidate code runs, and the worker copies the output out, checked, once the child is dead
(``sandbox/handoff.py``). Each test runs the real executor with the static checks off, so only the operating
system's layers stand in the way; a small cap keeps them quick. The directory output is tested through a real
merging-hf model in ``test_merging_hf.py::test_a_merge_that_fills_its_output_directory_stops_at_the_cap``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llm2.evaluation import EvalJob
from llm2.execution import make_executor
from llm2.sandbox.limits import GIB, MIB, SIMULATE_ENV, SandboxLimits
from llm2.sandbox.runner import runtime_limits
from llm2.task_api.base import EvalSetting, Runtime
from llm2.tasks import load_task
from llm2.tasks.preference.catalog import OBJECTIVES
from llm2.trusted import evaluate_trusted

HOSTILE = Path(__file__).parent / "hostile"
SCRATCH = 16 * MIB
LIMITS = SandboxLimits(timeout_s=30.0, memory_bytes=1 * GIB, scratch_bytes=SCRATCH)
FILE_SPEC: list[str] = []  # the task's spec, once the fixture wrote it
FILE_TASK = """
import dataclasses
from llm2.tasks.preference_synthetic.task import PreferenceSyntheticTask

class FileOutputPreference(PreferenceSyntheticTask):
    def runtime(self, settings):
        return dataclasses.replace(super().runtime(settings), output="file")
"""


@pytest.fixture(scope="module")
def file_task(tmp_path_factory):
    path = tmp_path_factory.mktemp("task") / "file_task.py"
    path.write_text(FILE_TASK)
    spec = f"{path}:FileOutputPreference"
    FILE_SPEC[:] = [spec]
    task = load_task(spec)
    setting = EvalSetting(task.parse_settings({"fitness": "judge"}), budget=0.05)  # the judge: no frontier to trace
    task.prepare(setting.task)
    with make_executor("local", task_spec=spec, task=task, workers=1, timeout_s=30.0, limits=LIMITS,
                       static_checks=False, warm_settings=setting.task) as executor:
        yield executor, setting


def test_an_output_file_or_directory_is_written_to_a_capped_tmpfs_with_room_for_it():
    """No runtime leaves the scratch on disk any more: a file or directory output gets the output's room on top."""
    limits = SandboxLimits()
    assert runtime_limits(limits, Runtime()).scratch_bytes == limits.scratch_bytes
    for output in ("file", "directory"):
        sized = runtime_limits(limits, Runtime(output=output, output_limit_bytes=100 * MIB))
        assert sized.scratch_bytes == limits.scratch_bytes + 100 * MIB
        assert runtime_limits(limits, Runtime(output=output)).scratch_bytes == limits.scratch_bytes + \
            limits.output_bytes


def test_a_file_output_comes_back_from_the_tmpfs_scored_as_trusted_code_scores(file_task):
    """The honest result file is read from the dead child's tmpfs, through the descriptor it handed over, and
    scores exactly what the same candidate scores in trusted code."""
    executor, setting = file_task
    through_file = executor.submit(EvalJob(OBJECTIVES["dpo"].code, setting)).result()
    assert through_file.status == "ok", through_file.error
    assert "mount_namespace" in through_file.sandbox
    trusted = evaluate_trusted(load_task("preference-synthetic"), OBJECTIVES["dpo"].code, setting)
    assert through_file.metrics == trusted.metrics


def test_a_file_output_task_stops_many_small_files_at_the_cap(file_task):
    """600 files of 512 KiB, each far under the file-size limit: the tmpfs (16 MiB here, plus the output's room)
    stops them, where on disk they would all have been written."""
    executor, setting = file_task
    result = executor.submit(EvalJob((HOSTILE / "disk_fill.py").read_text(), setting)).result()
    assert result.status == "invalid" and "No space left on device" in result.error, result.error
    files = int(result.error.split("stopped after ")[1].split()[0])
    room = runtime_limits(LIMITS, Runtime(output="file")).scratch_bytes
    assert SCRATCH // (512 << 10) <= files <= room // (512 << 10)  # the cap stopped it, not another limit


def test_nothing_outside_the_scratch_is_writable(file_task):
    """/, /tmp, /dev/shm, /var/tmp, /run, /root, /dev, the venv and the interpreter's own files: none takes a file."""
    executor, setting = file_task
    result = executor.submit(EvalJob((HOSTILE / "write_everywhere.py").read_text(), setting)).result()
    assert result.status == "invalid" and "wrote nowhere outside the scratch" in result.error, result.error


@pytest.mark.slow
def test_without_a_mount_namespace_a_file_output_is_refused_unless_the_user_opted_out(file_task, monkeypatch):
    """Fail closed: where no mount namespace can be made there is no tmpfs and no total cap, so the candidate is
    refused; with the user's explicit opt-out it runs, the missing layer is recorded, and its output is read from
    the scratch on disk (opened without following a link, as before)."""
    _, setting = file_task
    monkeypatch.setenv(SIMULATE_ENV, "mount_namespace")
    task = load_task(FILE_SPEC[0])
    for allow, expected in ((frozenset(), "failed"), (frozenset({"mount_namespace"}), "ok")):
        with make_executor("local", task_spec=FILE_SPEC[0], task=task, workers=1, timeout_s=30.0, limits=LIMITS,
                           allow_missing=allow, warm_settings=setting.task) as executor:
            result = executor.submit(EvalJob(OBJECTIVES["dpo"].code, setting)).result()
        assert result.status == expected, result.error
        if expected == "failed":
            assert result.error.startswith("sandbox unavailable: mount_namespace"), result.error
        else:
            assert "mount_namespace" not in result.sandbox and "seccomp" in result.sandbox
