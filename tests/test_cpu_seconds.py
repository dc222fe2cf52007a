"""Every evaluation reports the processor seconds it took (worker, candidate and scorer): a measure of cost that the
machine's other load does not move, unlike the clock seconds beside it (bench/search_efficiency.py counts it)."""

from pathlib import Path

from llm2.discovery.fanout import combine
from llm2.evaluation import EvalJob, result_from_dict, result_to_dict
from llm2.execution import make_executor
from llm2.task_api.base import EvalSetting
from llm2.tasks import load_task

SPEC = f"{Path(__file__).parent / 'example_task.py'}:RobustRegression"
LIGHT = "def light(prediction, target):\n    return (prediction - target) ** 2\n"
# the same loss, plus about 0.4 GFLOP of work per call that changes nothing: 200 calls, over half a second of a core
HEAVY = ("def heavy(prediction, target):\n"
         "    busy = torch.ones(600, 600) @ torch.ones(600, 600)\n"
         "    return (prediction - target) ** 2 + 0.0 * busy.mean()\n")


def test_the_candidates_own_processor_time_is_counted_and_travels_with_the_result():
    task = load_task(SPEC)
    setting = EvalSetting(task.settings_from_dict({}), 0)
    with make_executor("local", task_spec=SPEC, task=task, workers=1, timeout_s=120) as executor:
        first, light, heavy = (executor.submit(EvalJob(code, setting)).result() for code in (LIGHT, LIGHT, HEAVY))
    assert light.status == heavy.status == "ok" and light.fitness == heavy.fitness
    assert first.cpu_seconds > light.cpu_seconds > 0  # the worker's first job also loaded its training data
    # the extra work runs only in the candidate's confined process: it shows only if that process's time is counted
    assert heavy.cpu_seconds - light.cpu_seconds > 0.3
    assert result_from_dict(result_to_dict(heavy)).cpu_seconds == heavy.cpu_seconds  # the Ray executor's path
    assert combine([light, heavy]).metrics["cpu_seconds"] == light.cpu_seconds + heavy.cpu_seconds
