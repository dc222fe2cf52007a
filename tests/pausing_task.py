"""The example task (example_task.py) with multi-fidelity rungs, as an outside task would declare them: one whose
training cannot pause (a promoted candidate is trained again) and one whose training pauses at a rung's cut."""

from pathlib import Path

from llm2.task_api.base import EvalSetting, TrainOutput
from llm2.task_api.checkpoint import pause_budgets
from llm2.task_api.checks import per_example_losses
from llm2.task_api.registry import import_user_file

RobustRegression = import_user_file(Path(__file__).with_name("example_task.py"), "llm2_test_task").RobustRegression


class RungRegression(RobustRegression):
    """Rungs, but its train knows nothing of pauses."""

    fidelity_rungs = ((0.5, 1),)


class PausingRegression(RobustRegression):
    """Rungs, and a train that pauses where asked: 200 full-batch steps per budget, a constant learning rate."""

    fidelity_rungs = ((0.25, 1), (0.5, 1))

    def can_pause(self, settings) -> bool:
        return True

    def train(self, fn, training, setting: EvalSetting, checkpoint=None) -> TrainOutput:
        import torch

        x, y = training
        w, b = torch.zeros((), requires_grad=True), torch.zeros((), requires_grad=True)
        optimizer = torch.optim.Adam([w, b], lr=0.05)
        pauses = {int(200 * budget): budget for budget in pause_budgets(checkpoint)}
        trace = []
        for step in range(int(200 * setting.budget)):
            loss = per_example_losses(fn, (w * x + b, y), len(x), f"at step {step}", "train").mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            trace.append(loss.item())
            if step + 1 in pauses:
                weights = {"w": w.detach().clone(), "b": b.detach().clone()}
                if not checkpoint.pause(pauses[step + 1], TrainOutput(weights, list(trace), step + 1)):
                    break
        return TrainOutput({"w": w.detach().clone(), "b": b.detach().clone()}, trace, len(trace))


class SlowPausingRegression(PausingRegression):
    """Slow enough (5 ms a step: 1 s for a full run) that a kill lands in the middle of a run, along its rungs."""

    def train(self, fn, training, setting: EvalSetting, checkpoint=None) -> TrainOutput:
        import time

        def slow_loss(prediction, target):
            time.sleep(0.005)
            return fn(prediction, target)

        return super().train(slow_loss, training, setting, checkpoint)
