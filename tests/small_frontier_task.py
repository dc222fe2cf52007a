"""The small preference world (tests/tiny_preference_task.py) with a held-out suite on its one world only (no other
world to build) and a three-point frontier grid: the frontier verdict's end-to-end test, kept to seconds on two
cores. The verdict is about placing a point against dpo's grid, not about the default world's numbers."""

from dataclasses import replace
from pathlib import Path

from llm2.task_api.base import Knob
from llm2.task_api.registry import import_user_file
from llm2.tasks.preference_synthetic.task import PreferenceSyntheticTask

# by path, as the workers load this file: tests/ is on no worker's sys.path
TinyPreference = import_user_file(Path(__file__).with_name("tiny_preference_task.py"), "llm2_user_task").TinyPreference


class SmallFrontier(TinyPreference):
    trade_off = replace(PreferenceSyntheticTask.trade_off, knobs=(Knob("beta", (0.5, 1.0, 2.0), relative=True),))

    def heldout_settings(self, settings):
        return ([replace(settings, beta=b) for b in (0.01, 0.025, 0.1, 0.5)]
                + [replace(settings, label_noise=n) for n in (0.1, 0.3)])
