"""What every task shares: settings from --task-option, the task registry (names, files, entry points), the task
card, and the `llm2 tasks` command."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm2.cli import main
from llm2.tasks import TASKS, TaskNotFound, known_tasks, load_task
from llm2.task_api.card import TaskCard
from llm2.task_api.settings import SettingsError, option_help, parse_option_pairs, parse_settings, settings_from_dict


@dataclass(frozen=True)
class Knobs:
    rate: float = field(default=0.5, metadata={"help": "a rate"})
    steps: int = 3
    fast: bool = False
    name: str = "x"
    limit: float | None = None
    experts: tuple[str, ...] = ("a", "b")

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, not {self.steps}")


def test_options_are_converted_by_the_fields_type():
    knobs = parse_settings("t", Knobs, {"rate": "0.25", "steps": "7", "fast": "yes", "name": "y", "limit": "none",
                                        "experts": "p, q,r"})
    assert knobs == Knobs(0.25, 7, True, "y", None, ("p", "q", "r"))
    assert parse_settings("t", Knobs, {"limit": "2"}).limit == 2.0


@pytest.mark.parametrize("options, message", [
    ({"rte": "1"}, "unknown option 'rte' for task t; its options are: rate, steps"),
    ({"steps": "2.5"}, "option steps: '2.5' is not an integer"),
    ({"fast": "maybe"}, "option fast: 'maybe' is not a boolean"),
    ({"rate": ""}, "option rate: '' is not a number"),
    ({"steps": "0"}, "steps must be at least 1, not 0"),
])
def test_bad_options_say_which_and_why(options, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_settings("t", Knobs, options)


def test_recorded_settings_come_back_exactly_and_strictly():
    assert settings_from_dict("t", Knobs, {"rate": 1, "experts": ["z"], "limit": None}) == \
        Knobs(rate=1.0, experts=("z",))
    with pytest.raises(SettingsError, match="option steps: expected int, got True"):
        settings_from_dict("t", Knobs, {"steps": True})
    with pytest.raises(SettingsError, match="unknown option 'extra'"):
        settings_from_dict("t", Knobs, {"extra": 1})


def test_option_pairs_and_help():
    assert parse_option_pairs(["beta=0.1", "beta=0.2", "world-seed = 1"]) == {"beta": ["0.1", "0.2"],
                                                                               "world_seed": ["1"]}
    with pytest.raises(SettingsError, match="key=value"):
        parse_option_pairs(["beta"])
    rows = {row.name: row for row in option_help(Knobs)}
    assert rows["rate"].help == "a rate" and rows["limit"].kind == "float or none"
    assert rows["experts"].kind == "list of str (comma-separated)" and rows["experts"].default == ("a", "b")


def test_tasks_load_by_name_file_and_entry_point(tmp_path, monkeypatch):
    assert "preference-synthetic" in TASKS and load_task("preference-synthetic").name == "preference-synthetic"
    assert load_task("tests/example_task.py:RobustRegression").name == "robust-regression"
    for spec, message in [("nope", "unknown task 'nope'"), ("missing.py:Task", "task file not found"),
                          ("tests/example_task.py:Nope", "has no 'Nope'")]:
        with pytest.raises(TaskNotFound, match=message):
            load_task(spec)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(TaskNotFound, match="failed to load: RuntimeError: boom"):
        load_task(f"{broken}:Task")

    entry = metadata.EntryPoint("from-a-package", "tests.example_task:RobustRegression", "llm2.tasks")
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points",
                        lambda **kw: [entry] if kw.get("group") == "llm2.tasks" else real(**kw))
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # the package: tests.example_task
    assert known_tasks()["from-a-package"] == "tests.example_task:RobustRegression"
    assert load_task("from-a-package").name == "robust-regression"


def test_the_card_keeps_what_readers_need():
    card = TaskCard.of(load_task("preference-synthetic"))
    assert card.reference_baseline == "dpo" and card.metric_columns
    assert TaskCard.from_dict(card.to_dict()) == card


def test_tasks_command_lists_tasks_and_one_tasks_settings():
    listing = CliRunner().invoke(main, ["tasks"])
    assert listing.exit_code == 0 and "preference-synthetic" in listing.output and "classification" in listing.output
    one = CliRunner().invoke(main, ["tasks", "--task", "preference-synthetic"], terminal_width=200)
    assert one.exit_code == 0 and "beta" in one.output and "world_seed" in one.output and "dpo" in one.output
    bad = CliRunner().invoke(main, ["tasks", "--task", "nope"])
    assert bad.exit_code == 2 and "unknown task 'nope'" in bad.output and "Traceback" not in bad.output
