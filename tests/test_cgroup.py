"""The optional cgroup layer (issue 19): where a cgroup can be made, each confined child runs in its own, whose
memory cap counts what ``RLIMIT_AS`` cannot see (tmpfs pages here), and which is removed once the child is over.

Real cgroups, made by the real executor's worker; skipped only where this machine cannot make one. The candidate
fills its scratch tmpfs (1 GiB, so the tmpfs is not what stops it) with 400 MiB of small files: no file reaches the
file-size limit and tmpfs pages are not address space, so only the cgroup's 256 MiB stands in the way.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llm2.evaluation import EvalJob
from llm2.execution import make_executor
from llm2.sandbox import cgroup
from llm2.sandbox.limits import GIB, MIB, SIMULATE_ENV, SandboxLimits
from llm2.task_api.base import EvalSetting
from llm2.tasks import load_task

LIMITS = SandboxLimits(timeout_s=60.0, memory_bytes=256 * MIB, scratch_bytes=1 * GIB)
FILL = """
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    block = b"x" * (512 << 10)
    for index in range(MIBS * 2):
        with open(f"fill-{index}.bin", "wb") as handle:
            handle.write(block)
    x = beta * ((policy_chosen_logps - policy_rejected_logps) - (reference_chosen_logps - reference_rejected_logps))
    return -F.logsigmoid(x)
"""
TASK = "preference-synthetic"

probe = cgroup.make(LIMITS.memory_bytes, LIMITS.processes)
if isinstance(probe, cgroup.Cgroup):
    cgroup.remove(probe)
pytestmark = pytest.mark.skipif(not isinstance(probe, cgroup.Cgroup), reason=f"no cgroup here: {probe}")


def _leftovers() -> list[str]:
    """Groups of this test's workers (children of this process) or of workers that are gone; a live llm2 elsewhere
    on the machine may hold groups of its own meanwhile, which are not ours to count."""
    bases = [b for b in (cgroup._v2_base(), *(cgroup._v1_bases() or ())) if b is not None]
    names = [(b, e.name) for b in bases for e in os.scandir(b) if e.name.startswith(cgroup.PREFIX)]
    return sorted(str(b / name) for b, name in names if _ours_or_gone(name[len(cgroup.PREFIX):].split("-")[0]))


def _ours_or_gone(owner: str) -> bool:
    try:
        with open(f"/proc/{owner}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[1]) == os.getpid()
    except (OSError, ValueError, IndexError):
        return True


def _executor():
    task = load_task(TASK)
    # the judge: no dpo frontier to trace (minutes on a fresh cache, and nothing the cgroup checks)
    setting = EvalSetting(task.parse_settings({"fitness": "judge"}), budget=0.05)
    task.prepare(setting.task)
    return make_executor("local", task_spec=TASK, task=task, workers=1, timeout_s=60.0, limits=LIMITS,
                         static_checks=False, warm_settings=setting.task), setting


def _fill(executor_and_setting, mibs: int):
    executor, setting = executor_and_setting
    return executor.submit(EvalJob(FILL.replace("MIBS", str(mibs)), setting)).result()


@pytest.fixture(scope="module")
def capped():
    before = _leftovers()
    executor, setting = _executor()
    with executor:
        yield executor, setting
    assert _leftovers() == before  # the worker's groups are gone, the run's and the self-test's


def test_tmpfs_pages_beyond_the_memory_cap_are_stopped_by_the_cgroup(capped):
    """400 MiB into the tmpfs: the child is killed at the 256 MiB cap, the layer recorded, its group removed."""
    before = _leftovers()
    over = _fill(capped, 400)
    assert over.status == "failed" and "ended early" in over.error and "SIGKILL" in over.error, over.error
    assert "cgroup" in over.sandbox
    assert _leftovers() == before


def test_the_same_candidate_under_the_cap_goes_through_in_its_cgroup(capped):
    """The peer: 64 MiB is written and trained on, so it is the cap that stopped 400 MiB."""
    under = _fill(capped, 64)
    assert under.status == "ok", under.error
    assert "cgroup" in under.sandbox and "seccomp" in under.sandbox


def test_without_a_cgroup_the_layer_is_recorded_absent_and_the_run_goes_on(monkeypatch):
    """Not a failure where none can be made: the same 400 MiB is then written (the tmpfs's 1 GiB is its cap)."""
    monkeypatch.setenv(SIMULATE_ENV, "cgroup")
    executor, setting = _executor()
    with executor:
        result = _fill((executor, setting), 400)
    assert result.status == "ok", result.error
    assert "cgroup" not in result.sandbox and "seccomp" in result.sandbox


def test_the_sweep_removes_an_empty_group_of_a_dead_worker_and_leaves_a_live_ones(tmp_path):
    group = cgroup.make(LIMITS.memory_bytes, LIMITS.processes)
    assert isinstance(group, cgroup.Cgroup)
    dead = 2 ** 22 + 1  # above the default pid_max, so no process has it
    while os.path.exists(f"/proc/{dead}"):
        dead += 1
    orphans = [str(Path(path).parent / f"{cgroup.PREFIX}{dead}-1") for path in group.paths]
    for path in orphans:
        os.mkdir(path)
    try:
        assert cgroup.sweep() == len(orphans)
        assert not any(os.path.exists(path) for path in orphans)
        assert all(os.path.isdir(path) for path in group.paths)  # the live worker's (ours) stays
    finally:
        cgroup.remove(group)
        for path in orphans:
            if os.path.exists(path):
                os.rmdir(path)
    assert not any(os.path.exists(path) for path in group.paths)


SPAWN_TASK = """
import dataclasses
from llm2.tasks.preference_synthetic.task import PreferenceSyntheticTask

class SpawnedPreference(PreferenceSyntheticTask):
    def runtime(self, settings):
        return dataclasses.replace(super().runtime(settings), start="spawn")
"""


def test_a_spawned_child_joins_its_cgroup_too(tmp_path):
    """The group reaches a freshly spawned child (as CUDA tasks start) through its request, and is removed."""
    path = tmp_path / "spawn_task.py"
    path.write_text(SPAWN_TASK)
    spec = f"{path}:SpawnedPreference"
    task = load_task(spec)
    # the judge: no dpo frontier to trace (minutes on a fresh cache, and nothing the cgroup checks)
    setting = EvalSetting(task.parse_settings({"fitness": "judge"}), budget=0.05)
    task.prepare(setting.task)
    before = _leftovers()
    with make_executor("local", task_spec=spec, task=task, workers=1, timeout_s=60.0, limits=LIMITS,
                       static_checks=False, warm_settings=setting.task) as executor:
        over = executor.submit(EvalJob(FILL.replace("MIBS", "400"), setting)).result()
    assert over.status == "failed" and "SIGKILL" in over.error, over.error
    assert "cgroup" in over.sandbox
    assert _leftovers() == before
