"""Temperature schedules: the grammar, its refusals (one line, exit 2), and the temperature of every request of a
run with two proposers on islands, as a real HTTP server received it and as the archive recorded it."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm2.archive import Archive
from llm2.archive.population_tables import members
from llm2.cli import main
from llm2.discovery.temperature import Temperatures, parse_schedule
from testkit import invoke_llm2

EXAMPLE_TASK = f"{Path(__file__).parent / 'example_task.py'}:RobustRegression"


def test_constant_linear_cosine_and_per_island_schedules():
    assert parse_schedule("0.7").at(0, 0.5) == 0.7
    linear = parse_schedule("linear:1.2:0.4")
    assert [round(linear.at(0, p), 6) for p in (0.0, 0.5, 1.0)] == [1.2, 0.8, 0.4]
    cosine = parse_schedule("cosine:1:0")
    assert cosine.at(0, 0.0) == 1.0 and math.isclose(cosine.at(0, 0.5), 0.5) and math.isclose(cosine.at(0, 1.0), 0)
    assert cosine.at(0, 0.25) > 0.85  # flat near the ends: a line from 1 to 0 is at 0.75 there
    per_island = parse_schedule("islands:0.3,linear:1:2", islands=2)
    assert [per_island.at(0, 1.0), per_island.at(1, 1.0)] == [0.3, 2.0]


def test_a_proposer_takes_its_own_schedule_before_its_name_s_and_the_run_s():
    temperatures = Temperatures(["openai:m1=0.1", "openai=0.2", "0.3"], islands=1,
                                labels=("openai:m1", "openai:m2", "symbolic"), default=0.8)
    assert [temperatures.at(label, 0, 1, 4) for label in ("openai:m1", "openai:m2", "symbolic")] == [0.1, 0.2, 0.3]
    assert Temperatures(["openai=linear:1:0"], 1, ("openai",), 0.8).at("openai", 0, 4, 4) == 0.0  # the last
    assert Temperatures([], 1, (), 0.8).at("anything", 0, 2, 4) == 0.8  # no schedule: --temperature


@pytest.mark.parametrize("spec, islands, reason", [
    ("linear:1", 1, "linear needs two temperatures"),
    ("cosine:1:hot", 1, "'hot' is not a number"),
    ("-0.5", 1, "must be 0 or more"),
    ("nan", 1, "must be 0 or more"),
    ("step:1:2", 1, "'step' is not constant, linear:A:B, cosine:A:B or islands:S0,S1,..."),
    ("islands:0.5,1", 3, "gives 2 island schedule(s); the run has 3 island(s)"),
    ("", 1, "is empty"),
])
def test_a_bad_schedule_is_refused_with_its_reason(spec, islands, reason):
    with pytest.raises(ValueError, match="temperature schedule") as refused:
        parse_schedule(spec, islands)
    assert reason in str(refused.value)


@pytest.mark.parametrize("options, reason", [
    (["--temperature-schedule", "linear:1:x"], "'x' is not a number"),
    (["--temperature-schedule", "openai=0.5"], "not one of the run's proposers (symbolic)"),
    (["--temperature-schedule", "0.5", "--temperature-schedule", "0.6"], "given twice for every proposer"),
    (["--temperature-schedule", "islands:0.5,1", "--islands", "3"], "the run has 3 island(s)"),
])
def test_a_bad_schedule_on_the_command_line_is_one_line_and_exit_2(tmp_path, options, reason):
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, ["discover", "--run-dir", str(run_dir), *options])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and "Traceback" not in result.output
    assert not run_dir.exists()  # refused before anything was made


def answering_by_model(received):
    """A good reply per request, its loss scaled by a running count so no two are the same code."""
    from fake_openai_server import completion, good_reply_json

    number = next(COUNTER)
    name = f"{received.body['model']}_loss_{number}"
    code = f"def {name}(prediction, target):\n    return {number + 1}.0 * (prediction - target).abs()\n"
    return completion(good_reply_json(name, code=code), model=received.body["model"])


COUNTER = itertools.count()


def test_each_request_is_sent_and_recorded_at_its_proposer_s_and_island_s_temperature(tmp_path):
    from fake_openai_server import FakeOpenAIServer

    run_dir = tmp_path / "run"
    with FakeOpenAIServer([], default=answering_by_model, models=("m1", "m2")) as server:
        invoke_llm2("discover", "--task", EXAMPLE_TASK, "--proposer", "openai", "--model", "m1",
                    "--proposer", "openai:m2", "--base-url", server.base_url, "--api-key-env", "NO_SUCH_KEY",
                    "--temperature-schedule", "openai:m1=linear:1.2:0.4",
                    "--temperature-schedule", "openai:m2=islands:0.3,cosine:1:0",
                    "--islands", "2", "--generations", "3", "--population", "2", "--seeds", "1", "--workers", "1",
                    "--run-dir", str(run_dir))
        sent = [(r.body["model"], r.body["temperature"]) for r in server.requests]
    with Archive.open(run_dir, readonly=True) as archive:
        assert archive.run.config["temperature_schedule"] == ["openai:m1=linear:1.2:0.4",
                                                              "openai:m2=islands:0.3,cosine:1:0"]
        island = {m.index: m.island for m in members(archive) if m.via == "proposed"}
        by_index = {c.index: c for c in archive.candidates()}
        recorded = [(r.request["proposer"], r.request["temperature"], by_index[r.index].generation,
                     island[r.index]) for r in archive.requests()]
    assert len(recorded) == 6 and {label for label, *_ in recorded} == {"openai:m1", "openai:m2"}
    expected = {("openai:m1", g, i): {1: 1.2, 2: 0.8, 3: 0.4}[g] for g in (1, 2, 3) for i in (0, 1)}
    expected |= {("openai:m2", g, 0): 0.3 for g in (1, 2, 3)}
    expected |= {("openai:m2", g, 1): {1: 1.0, 2: 0.5, 3: 0.0}[g] for g in (1, 2, 3)}
    assert [t for _, t, _, _ in recorded] == [expected[(label, g, i)] for label, _, g, i in recorded]
    # what the server received is what the archive says was sent, request by request
    assert sent == [(label.split(":")[1], t) for label, t, _, _ in recorded]

    board = invoke_llm2("leaderboard", str(run_dir), "--json")
    shares = {row["label"]: row for row in json.loads(board.output)["proposers"]}
    assert sum(row["proposals"] for row in shares.values()) == 6
    assert sorted(shares["openai:m1"]["temperatures"]) == sorted({t for label, t, *_ in recorded if label == "openai:m1"})


def test_a_resumed_run_keeps_its_schedule(tmp_path):
    result = CliRunner().invoke(main, ["discover", "--run-dir", str(tmp_path), "--resume",
                                       "--temperature-schedule", "0.5"])
    assert result.exit_code == 2 and "keeps its temperature schedule" in result.output
