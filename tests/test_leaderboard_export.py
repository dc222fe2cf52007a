"""``llm2 leaderboard`` and ``llm2 export`` on a real archive, through the real command line."""

import json

import pytest
import torch
from click.testing import CliRunner

from llm2.archive import Archive
from llm2.archive.function_files import read_function
from llm2.cli import main
from llm2.sandbox.loader import load_function
from llm2.tasks import load_task
from llm2.task_api.card import TaskCard
from llm2.tasks.preference.catalog import OBJECTIVES
from llm2.tasks.preference.contract import PREFERENCE_CONTRACT
from testkit import import_file, make_run

CONFIG = {"task": "preference-synthetic", "task_settings": {"beta": 0.05}}
CARD = TaskCard.of(load_task("preference-synthetic")).to_dict()

SCALED = '''
def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    """Original docstring that the export replaces."""
    # a sharper logistic
    margin = (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)
    return -F.logsigmoid(1.7 * beta * margin)
'''

# Module-level constant, helper and imports: all must survive the export.
WITH_HELPER = '''
import math
import torch
from math import log as natural_log

TAU = 0.05


def gate(x):
    return torch.sigmoid(x / TAU)


def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    x = beta * ((policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps))
    g = gate(x)
    return (1 - g) * -F.logsigmoid(x) + g * torch.exp(-x) + 0 * natural_log(2.0) * math.pi
'''

# A single function under another name: the loader takes it, so must the export.
HINGE_TWIST = '''
def twisted_hinge(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):
    x = beta * ((policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps))
    return torch.relu(0.8 - x) + 0.1 * x ** 2
'''


def build_run(run_dir, n_extra=0):
    run = make_run(run_id="abc123", config=CONFIG, started_at=1.0)
    archive = Archive.create(run_dir, run, CARD)

    def add(name, code, status, fitness, generation=1, thought="", error=None):
        record = archive.add_candidate(generation=generation, proposer="symbolic" if generation else "catalog",
                                       thought=thought, name=name, code=code,
                                       status="baseline" if status == "baseline" else "pending")
        archive.finish_candidate(record.id, status=status, stage="done" if fitness is not None else "train",
                                 error=error, fitness=fitness, fitness_std=0.004 if fitness is not None else None,
                                 metrics={"kl": 5.5} if fitness is not None else {}, seconds=1.6, feedback="fb")
        return record

    add("dpo", OBJECTIVES["dpo"].code, "baseline", 0.80, generation=0)
    add("hinge", OBJECTIVES["hinge"].code, "baseline", 0.85, generation=0)
    add("Scaled Logistic", SCALED, "ok", 0.91, thought='Sharpen the logistic by 1.7; "quotes" \\ survive.')
    add("gated blend!", WITH_HELPER, "ok", 0.93, thought="Blend logistic and exponential with a sigmoid gate. " * 8)
    add("Scaled Logistic", HINGE_TWIST, "ok", 0.88, thought="A hinge with a quadratic term.")
    add("diverges", "def loss(a, b, c, d, beta):\n    return a * 1e30\n", "failed", None, error="loss is not finite")
    for i in range(n_extra):
        add(f"filler {i}", SCALED.replace("1.7", f"{2 + i}"), "ok", 0.86 + i / 1000)
    archive.set_run_status("finished")
    archive.close()


@pytest.fixture
def run_dir(tmp_path):
    build_run(tmp_path / "run")
    return tmp_path / "run"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_leaderboard_table_ranks_by_fitness_with_baselines(run_dir):
    result = invoke("leaderboard", run_dir)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    order = [name for name in ("gated blend!", "Scaled Logistic", "hinge (baseline)", "dpo (reference)")
             if any(name in line for line in lines)]
    assert order == ["gated blend!", "Scaled Logistic", "hinge (baseline)", "dpo (reference)"]
    assert "0.9300 ± 0.0040" in result.output
    assert "diverges" not in result.output  # not scored: only with --all
    assert "abc123" in result.output


def test_leaderboard_json_and_reference_outside_top(tmp_path):
    build_run(tmp_path / "run", n_extra=6)
    result = invoke("leaderboard", tmp_path / "run", "--top", "3", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    rows = data["rows"]
    assert [r["name"] for r in rows[:3]] == ["gated blend!", "Scaled Logistic", "Scaled Logistic"]
    assert [r["rank"] for r in rows[:3]] == [1, 2, 3]
    assert rows[-1]["name"] == "dpo" and rows[-1]["reference"] and rows[-1]["rank"] == 11
    assert len(rows) == 4
    assert data["run"]["run_id"] == "abc123" and data["counts"]["ok"] == 9 and data["counts"]["failed"] == 1


def test_leaderboard_all_lists_failures_with_reasons(run_dir):
    data = json.loads(invoke("leaderboard", run_dir, "--all", "--json").output)
    assert len(data["rows"]) == 6
    assert data["rows"][-1]["name"] == "diverges" and data["rows"][-1]["rank"] is None
    table = invoke("leaderboard", run_dir, "--all")
    assert "diverges" in table.output and "loss is not finite" in table.output


@pytest.mark.parametrize("command", ["leaderboard", "export"])
def test_missing_or_foreign_archive_is_a_clear_exit_2(tmp_path, command):
    extra = ["--out", tmp_path / "x.py"] if command == "export" else []
    result = invoke(command, tmp_path / "nothing-here", *extra)
    assert result.exit_code == 2
    assert "no llm2 archive" in result.output and "Traceback" not in result.output
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "archive.sqlite").write_text("hello")
    result = invoke(command, tmp_path / "bad", *extra)
    assert result.exit_code == 2 and "not a readable llm2 archive" in result.output


def _random_inputs(seed=0, batch=64):
    generator = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(batch, generator=generator) * 5 - 20 for _ in range(4)]
    return (*tensors, 0.1)


def test_export_loads_and_matches_the_candidates(run_dir, tmp_path):
    out = tmp_path / "best.py"
    result = invoke("export", run_dir, "--top", "3", "--out", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "abc123" in text and "preference-synthetic" in text and "llm2 0.1.0" in text and "TRL" in text
    module = import_file(out, "exported_objectives")
    assert list(module.OBJECTIVES) == ["gated_blend", "scaled_logistic", "scaled_logistic_2"]

    archive = Archive.open(run_dir, readonly=True)
    best = archive.best(3)
    inputs = _random_inputs()
    for name, candidate in zip(module.OBJECTIVES, best):
        expected = load_function(candidate.code, PREFERENCE_CONTRACT)(*inputs)
        assert torch.allclose(module.OBJECTIVES[name](*inputs), expected, atol=0, rtol=0), name
        read_back = read_function(f"{out}:{name}", PREFERENCE_CONTRACT)
        loaded = load_function(read_back.code, PREFERENCE_CONTRACT)
        assert torch.allclose(loaded(*inputs), expected, atol=0, rtol=0), name
        assert " ".join(candidate.thought.split()) in " ".join(read_back.thought.split())
        assert f"{candidate.fitness:.4f}" in read_back.thought and "KL 5.500" in read_back.thought
    assert module.gated_blend.__doc__.startswith("Blend logistic and exponential")
    assert '"quotes"' in module.scaled_logistic.__doc__
    assert "Original docstring" not in text and "TAU = 0.05" in text and "twisted_hinge" not in text


def test_export_without_scored_candidates_is_a_clear_error(tmp_path):
    run = make_run(run_id="empty", config=CONFIG, seeds={}, versions={}, started_at=1.0)
    Archive.create(tmp_path / "run", run).close()
    result = invoke("export", tmp_path / "run", "--out", tmp_path / "x.py")
    assert result.exit_code == 2 and "no successfully evaluated candidate" in result.output
    assert not (tmp_path / "x.py").exists()


def test_function_identifiers_are_valid_and_unique():
    from llm2.archive.export import function_identifier

    taken = set()
    for name, expected in [("Scaled Logistic", "scaled_logistic"), ("scaled-logistic", "scaled_logistic_2"),
                           ("3-way blend", "objective_3_way_blend"), ("lambda", "lambda_objective"),
                           ("max", "max_objective"), ("F", "f"), ("∑ weird ∑", "weird"), ("", "objective")]:
        identifier = function_identifier(name, taken)
        taken.add(identifier)
        assert identifier == expected and identifier.isidentifier()


def test_export_rewrites_code_and_never_runs_it(tmp_path):
    """A default argument runs when the function is defined: inert in the sandbox, live on import. Export refuses
    it (the static checks refuse it since issue 19; an older archive may still hold one) and writes nothing."""
    payload = ("def sneaky(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps,"
               " beta=1 / 0):\n    return -F.logsigmoid(beta * (policy_chosen_logps - policy_rejected_logps))\n")
    run = make_run(run_id="p", config=CONFIG, seeds={}, versions={}, started_at=1.0, status="finished")
    archive = Archive.create(tmp_path / "run", run, CARD)
    record = archive.add_candidate(generation=1, proposer="p", thought="t", name="sneaky", code=payload)
    archive.finish_candidate(record.id, status="ok", stage="done", error=None, fitness=0.9, fitness_std=0.0,
                             metrics={}, seconds=1.0, feedback="fb")
    archive.close()
    result = invoke("export", tmp_path / "run", "--out", tmp_path / "out.py")
    assert result.exit_code == 1 and "cannot be exported" in result.output and "default argument" in result.output
    assert not (tmp_path / "out.py").exists()

    hostile = payload.replace("beta=1 / 0", "beta=__import__('os').system('true')")
    archive = Archive.open(tmp_path / "run")
    record = archive.add_candidate(generation=1, proposer="p", thought="t", name="hostile", code=hostile)
    archive.finish_candidate(record.id, status="ok", stage="done", error=None, fitness=0.95, fitness_std=0.0,
                             metrics={}, seconds=1.0, feedback="fb")
    archive.close()
    result = invoke("export", tmp_path / "run", "--out", tmp_path / "bad.py")
    assert result.exit_code == 1 and "cannot be exported" in result.output and "__import__" in result.output
    assert not (tmp_path / "bad.py").exists()
