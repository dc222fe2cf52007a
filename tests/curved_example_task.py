"""The example task (tests/example_task.py, robust regression) with training curves, so that runs which draw curve
pictures for the proposer take seconds."""

from pathlib import Path

from llm2.task_api.registry import import_user_file

RobustRegression = import_user_file(Path(__file__).with_name("example_task.py"), "llm2_user_task").RobustRegression


class CurvedRegression(RobustRegression):
    name = "curved-regression"

    def train(self, *args, **kwargs):
        output = super().train(*args, **kwargs)
        trace = output.loss_trace
        steps = range(0, len(trace), max(1, len(trace) // 20))
        output.curves = {"step": [float(i) for i in steps], "loss": [trace[i] for i in steps]}
        return output
