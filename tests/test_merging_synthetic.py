"""merging-synthetic: the world's split between training and scoring data, the baselines, determinism, the
contract's checks, the held-out settings, the offline proposer and the export — on the small world (built in
seconds) — and, on the default world, the finding the task is built on: task arithmetic and TIES beat the seed and
every single expert."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from llm2.discovery.parse import parse_reply
from llm2.trusted import evaluate_trusted
from llm2.proposers.base import ProposalRequest, ScoredCandidate
from llm2.sandbox.loader import load_function
from llm2.sandbox.static_checks import static_check
from llm2.task_api import cache
from llm2.task_api.base import CandidateError, EvalSetting, TrainOutput
from llm2.tasks.merging.baselines import BASELINES
from llm2.tasks.merging.contract import MERGE_CONTRACT
from llm2.tasks.merging.portable import merge_state_dicts
from llm2.tasks.merging.proposer import MergingOfflineProposer
from llm2.tasks.merging.rules import read_rule
from llm2.tasks.merging_synthetic import world
from llm2.tasks.merging_synthetic.task import MergingSyntheticSettings, MergingSyntheticTask
from llm2.task_api.settings import SettingsError
from testkit import import_file

SMALL = MergingSyntheticSettings(world="small")


@pytest.fixture(scope="module")
def task():
    task = MergingSyntheticTask()
    task.prepare(SMALL)
    return task


def merge_fn(code: str):
    return load_function(code, MERGE_CONTRACT)


def test_settings_are_parsed_and_checked():
    task = MergingSyntheticTask()
    settings = task.parse_settings({"experts": "copy, sort", "world_seed": "2"})
    assert settings.experts == ("copy", "sort") and settings.world_seed == 2
    for options, reason in (({"experts": "copy,juggle"}, "unknown skill(s) 'juggle'"),
                            ({"experts": "copy,copy"}, "a skill is named twice"),
                            ({"experts": ""}, "name at least one skill"),
                            ({"expert_seed": "-1"}, "expert_seed must be 0 or more"),
                            ({"world": "huge"}, "world must be one of default, small")):
        with pytest.raises(SettingsError, match=reason.replace("(", "\\(").replace(")", "\\)")):
            task.parse_settings(options)
    assert task.setting_text(settings) == "2 experts (copy, sort), fine-tuning seed 0, world 2"


def test_training_data_never_loads_scoring_data(task, monkeypatch):
    loaded = []
    real_load = cache.load
    monkeypatch.setattr(cache, "load", lambda path: loaded.append(path) or real_load(path))
    data = MergingSyntheticTask().training_data(SMALL)
    heldout = world.problems_file(SMALL.world_seed, SMALL.world)
    assert heldout.exists() and heldout not in loaded and len(loaded) == 1 + len(SMALL.experts)
    assert {f.name for f in dataclasses.fields(data)} == {"skills", "base", "experts"}
    assert all(set(expert) == set(data.base) for expert in data.experts)


def test_every_baseline_merges_into_the_models_shapes(task):
    data = task.training_data(SMALL)
    spec = task.output_spec(data)
    reference = task.scorer(SMALL).reference_metrics()
    for name, baseline in BASELINES.items():
        assert static_check(baseline.code, MERGE_CONTRACT) == [], name
        output = task.train(merge_fn(baseline.code), data, EvalSetting(SMALL))
        assert {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in output.weights.items()} == \
               {k: (s.shape, s.dtype) for k, s in spec.items()}, name
        metrics = task.scorer(SMALL).score(output)
        assert 0 <= metrics.fitness <= 1 and set(metrics.values) >= {"worst", "others", "accuracy_copy"}
    assert reference.fitness == task.scorer(SMALL).score(TrainOutput(data.base, [], 0)).fitness


def test_merges_are_deterministic_per_seed(task):
    data = task.training_data(SMALL)
    dare = merge_fn(BASELINES["dare_linear"].code)
    first, again = (task.train(dare, data, EvalSetting(SMALL, seed=0)).weights for _ in range(2))
    other = task.train(dare, data, EvalSetting(SMALL, seed=1)).weights
    name = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(first[name], again[name]) and not torch.equal(first[name], other[name])
    plain = merge_fn(BASELINES["task_arithmetic"].code)
    assert all(torch.equal(a, b) for a, b in zip(task.train(plain, data, EvalSetting(SMALL, seed=0)).weights.values(),
                                                  task.train(plain, data, EvalSetting(SMALL, seed=5)).weights.values()))
    seed_state = world.load_seed(SMALL.world_seed, SMALL.world)
    recipe = world.RECIPES["small"]
    built = [world.build_expert(seed_state, 0, "swap", 3, recipe) for _ in range(2)]
    assert all(torch.equal(built[0][k], built[1][k]) for k in built[0])


@pytest.mark.parametrize("code, reason", [
    ("def merge(name, base, experts):\n    return base.flatten()\n", "merge returned shape \\(96,\\) for parameter "),
    ("def merge(name, base, experts):\n    return base / 0.0\n", "non-finite values \\(nan or inf\\) for parameter "),
    ("def merge(name, base, experts):\n    return base.tolist()\n", "merge returned list for parameter "),
    ("def merge(name, base, experts):\n    return base.long()\n", "tensor of torch.int64 for parameter "),
    ("def merge(name, base, experts):\n    return experts[3]\n",
     "raised IndexError: list index out of range \\(parameter "),
])
def test_contract_checks_reject_with_a_reason_naming_the_parameter(task, code, reason):
    with pytest.raises(CandidateError, match=reason + "'model.layers.0.mlp.up_proj.weight'") as caught:
        task.check_contract(merge_fn(code), task.training_data(SMALL))
    assert caught.value.stage == "contract"


def test_a_bad_answer_for_one_real_parameter_fails_training_naming_it(task):
    code = ("def merge(name, base, experts):\n"
            "    return base * float('nan') if name == 'lm_head.weight' else base\n")
    task.check_contract(merge_fn(code), task.training_data(SMALL))  # the unit checks use other names
    result = evaluate_trusted(task, code, EvalSetting(SMALL))
    assert (result.status, result.stage) == ("failed", "train")
    assert "non-finite values (nan or inf) for parameter 'lm_head.weight'" in result.error


def test_a_candidate_cannot_change_the_world_in_place(task):
    before = evaluate_trusted(task, BASELINES["task_arithmetic"].code, EvalSetting(SMALL)).fitness
    vandal = "def merge(name, base, experts):\n    base.mul_(0.0)\n    experts[0].add_(1.0)\n    return base\n"
    assert evaluate_trusted(task, vandal, EvalSetting(SMALL)).status == "ok"
    assert evaluate_trusted(task, BASELINES["task_arithmetic"].code, EvalSetting(SMALL)).fitness == before


def test_heldout_settings_differ_in_one_knob():
    task = MergingSyntheticTask()
    default = MergingSyntheticSettings()
    held = task.heldout_settings(default)
    for settings in held:
        changed = [f.name for f in dataclasses.fields(default) if getattr(settings, f.name) != getattr(default, f.name)]
        assert len(changed) == 1, changed
    unseen = [s.experts for s in held if len(s.experts) == 3 and s.experts != default.experts]
    assert unseen and all(not set(group) & set(default.experts) for group in unseen)
    assert {len(s.experts) for s in held} == {2, 3, 4}
    assert any(s.expert_seed == 1 for s in held) and any(s.world_seed == 1 for s in held)


def _history(extra: tuple[ScoredCandidate, ...] = ()) -> tuple[ScoredCandidate, ...]:
    fitness = {"task_arithmetic": 0.72, "ties": 0.69, "average": 0.68, "dare_linear": 0.66,
               "dare_ties": 0.51, "breadcrumbs": 0.63, "model_stock": 0.53, "slerp": 0.68}
    return tuple(ScoredCandidate(n, b.code, fitness[n], "ok") for n, b in BASELINES.items()) + extra


def test_offline_proposer_replies_parse_run_and_are_reproducible(task):
    history = _history()
    replies = [MergingOfflineProposer(seed=7).propose(ProposalRequest((), history, 1.0, i)).text for i in range(12)]
    assert replies == [MergingOfflineProposer(seed=7).propose(ProposalRequest((), history, 1.0, i)).text
                       for i in range(12)]
    assert replies != [MergingOfflineProposer(seed=8).propose(ProposalRequest((), history, 1.0, i)).text
                       for i in range(12)]
    names = set()
    for text in replies:
        assert list(json.loads(text)) == ["thought", "name", "code"]
        reply = parse_reply(text)
        assert static_check(reply.code, MERGE_CONTRACT) == [] and read_rule(reply.name, reply.code) is not None
        names.add(reply.name)
        assert reply.name not in BASELINES
    assert len(names) >= len(replies) - 2  # names are unique against the history; parallel requests rarely collide
    code = parse_reply(replies[0]).code
    result = evaluate_trusted(task, code, EvalSetting(SMALL))
    assert result.status == "ok" and 0 <= result.fitness <= 1


def test_offline_proposer_builds_on_its_own_candidates_after_a_resume():
    """A fresh proposer (as after a resume) reads a candidate's rule back from its code and mutates it."""
    first = parse_reply(MergingOfflineProposer(seed=1).propose(ProposalRequest((), _history(), 1.0, 0)).text)
    best = ScoredCandidate(first.name, first.code, 0.9, "ok", first.thought)
    history = _history((best,))
    thoughts = [json.loads(MergingOfflineProposer(seed=2).propose(ProposalRequest((), history, 1.0, i)).text)["thought"]
                for i in range(10)]
    assert any(f"starting from {first.name} (fitness 0.9000)" in t for t in thoughts)
    foreign = ScoredCandidate("clever", "def merge(name, base, experts):\n    return base\n", 0.95, "ok")
    reply = MergingOfflineProposer(seed=2).propose(ProposalRequest((), _history((foreign,)), 1.0, 0))
    assert "starting from clever" not in reply.text  # code it cannot read is not a parent


def test_exported_module_merges_state_dicts(task, tmp_path):
    from llm2.archive.export import export_entries
    from llm2.archive.records import CandidateRecord, RunInfo

    run = RunInfo("run-1", task.name, "merging-offline", "", {}, {}, {}, 0.0, None, "finished")
    code = BASELINES["ties"].code
    candidate = CandidateRecord(1, 0, 0, "merging-offline", "TIES as is", "Ties Copy", code, "h", "ok", "done",
                                None, None, 0.69, None, {"worst": 0.4}, 1.0, 0, 0, 0.0, (), None, 0.0, None)
    text = task.export_module(export_entries([candidate], run, task), run, "merges.py")
    assert "merge_state_dicts" in text and "mergekit_method" in text and "OBJECTIVES" in text
    (tmp_path / "merges.py").write_text(text)
    module = import_file(tmp_path / "merges.py", "merges_export_test")
    data = task.training_data(SMALL)
    merged = module.merge_state_dicts(module.OBJECTIVES["ties_copy"], data.base, list(data.experts))
    expected = merge_state_dicts(merge_fn(code), data.base, list(data.experts))
    assert all(torch.equal(merged[k], expected[k]) for k in expected)


@pytest.mark.slow
def test_default_world_task_arithmetic_and_ties_beat_the_seed_and_every_expert():
    task = MergingSyntheticTask()
    settings = MergingSyntheticSettings()
    task.prepare(settings)
    scorer = task.scorer(settings)
    data = task.training_data(settings)
    singles = [scorer.reference_metrics().fitness] + [scorer.score(TrainOutput(e, [], 0)).fitness
                                                      for e in data.experts]
    merged = {name: evaluate_trusted(task, BASELINES[name].code, EvalSetting(settings)).fitness
              for name in ("task_arithmetic", "ties", "dare_ties")}
    print(f"\nseed and single experts {[round(s, 4) for s in singles]}; merges "
          f"{ {k: round(v, 4) for k, v in merged.items()} }")
    assert merged["task_arithmetic"] > max(singles) and merged["ties"] > max(singles)
    assert merged["dare_ties"] < merged["task_arithmetic"] - 0.05  # DARE's 90 % drop is too much for a tiny model
