"""preference-synthetic with a held-out suite on the default world only (no other world to build) and a three-point
frontier grid: the frontier verdict's end-to-end test, kept to a couple of minutes on two cores."""

from dataclasses import replace

from llm2.task_api.base import Knob, TradeOff
from llm2.tasks.preference_synthetic.task import PreferenceSyntheticTask


class SmallFrontier(PreferenceSyntheticTask):
    trade_off = replace(PreferenceSyntheticTask.trade_off, knobs=(Knob("beta", (0.5, 1.0, 2.0), relative=True),))

    def heldout_settings(self, settings):
        return ([replace(settings, beta=b) for b in (0.01, 0.025, 0.1, 0.5)]
                + [replace(settings, label_noise=n) for n in (0.1, 0.3)])
