"""The Ray executor on a real local Ray instance: the same jobs give the same results as the local executor."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import psutil
import pytest

from llm2.evaluation import EvalJob
from llm2.execution import make_executor
from llm2.tasks import load_task
from llm2.task_api.base import EvalSetting
from llm2.tasks.preference.catalog import OBJECTIVES
from testkit import descendants

TASK = load_task("preference-synthetic")
SETTING = EvalSetting(TASK.parse_settings({"fitness": "judge"}), budget=0.1)  # the judge: no dpo frontier to trace
LOOP = OBJECTIVES["dpo"].code.replace("    rho =", "    while True:\n        pass\n    rho =", 1)
JOBS = [
    EvalJob(OBJECTIVES["dpo"].code, SETTING, "dpo"),
    EvalJob(OBJECTIVES["hinge"].code, SETTING.replace(seed=1), "hinge"),
    EvalJob("import os\n", SETTING, "static"),
    EvalJob(OBJECTIVES["dpo"].code.replace("-F.logsigmoid(x)", "-F.logsigmoid(x).mean()"), SETTING, "contract"),
    EvalJob(LOOP, SETTING, "timeout"),
]


def test_a_missing_ray_gives_a_clear_error(monkeypatch):
    from llm2.execution import ray_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray looks like to import
    with pytest.raises(RuntimeError, match=r"the ray executor needs Ray: pip install 'llm2\[ray\]'"):
        ray_executor._import_ray()


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp_dir = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    ray.init(num_cpus=2, _temp_dir=temp_dir, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ray_and_local_give_the_same_results(ray_instance):
    before = descendants()
    TASK.prepare(SETTING.task)
    # the looping job holds a worker until the timeout, in each executor: short, yet 3x an honest job under load
    with make_executor("local", task_spec="preference-synthetic", workers=2, timeout_s=5,
                       warm_settings=SETTING.task) as local:
        expected = {job.key: f.result() for job, f in [(job, local.submit(job)) for job in JOBS]}
    with make_executor("ray", task_spec="preference-synthetic", timeout_s=5, warm_settings=SETTING.task,
                       ray_resources={"num_cpus": 1}) as remote:
        futures = [(job, remote.submit(job)) for job in JOBS]
        actual = {job.key: future.result(timeout=300) for job, future in futures}
    for key, result in expected.items():
        other = actual[key]
        assert (other.status, other.stage, other.fitness) == (result.status, result.stage, result.fitness), key
    assert expected["dpo"].status == "ok" and expected["hinge"].status == "ok"
    assert (expected["static"].status, expected["contract"].stage, expected["timeout"].status) == \
        ("invalid", "contract", "timeout")
    assert actual["dpo"].loss_trace == expected["dpo"].loss_trace and actual["dpo"].sandbox == expected["dpo"].sandbox
    ray_instance.shutdown()  # Ray's workers take their sandbox workers with them
    leftovers = descendants() - before
    assert not [p for p in leftovers if psutil.pid_exists(p) and "llm2.sandbox.worker" in
                " ".join(psutil.Process(p).cmdline())]
