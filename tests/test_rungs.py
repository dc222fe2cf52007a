"""Multi-fidelity evaluation: every proposal starts on the task's lowest rung, only the best climb to the full
evaluation, and each decision is kept with its evidence."""

from __future__ import annotations

import json
from pathlib import Path

from test_discovery import run_discovery
from tiny_preference_task import TINY_TASK
from llm2.archive.ranking import ranked
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.rungs import Rung, ladder_of
from llm2.evaluation import EvalJob
from llm2.execution import make_executor
from llm2.proposers import make_proposer
from llm2.proposers.replay import ReplayProposer
from llm2.task_api.base import EvalSetting
from llm2.tasks import load_task

PAUSING_TASKS = Path(__file__).with_name("pausing_task.py")


def test_successive_halving_promotes_the_best_and_records_why(tmp_path):
    config = DiscoveryConfig(task=TINY_TASK, generations=2, population=3, seeds=2, baselines=("dpo",), rungs=True,
                             race=False)
    archive, summary = run_discovery(tmp_path, config, make_proposer("symbolic", seed=0))
    candidates = archive.candidates()
    dpo = next(c for c in candidates if c.name == "dpo")
    assert dpo.metrics["rung_fitness"][0] is not None and dpo.fitness is not None  # a baseline climbs every rung
    judged = [c for c in candidates if c.generation > 0 and c.metrics.get("promotions")]
    stopped = [c for c in judged if not c.metrics["promotions"][-1]["promoted"]]
    promoted = [c for c in judged if c.metrics["promotions"][-1]["promoted"]]
    assert stopped and promoted, [(c.name, c.metrics.get("promotions")) for c in judged]
    for candidate in stopped:  # kept with its rung's numbers, not ranked against full evaluations
        evidence = candidate.metrics["promotions"][-1]
        assert candidate.status == "ok" and candidate.stage == "rung" and candidate.fitness is None
        assert evidence["rank"] > evidence["quota"] and evidence["fitness"] == candidate.metrics["rung_fitness"][0]
        assert f"ranks {evidence['rank']} of {evidence['of']}" in candidate.feedback
    for candidate in promoted:
        assert candidate.fitness is not None and len(candidate.metrics["rung_fitness"]) == 2
        assert len(candidate.metrics["fitness_per_seed"]) == 2  # the top rung is the full evaluation
        # judged at the pause along its seed's run, which then went on: the rung's training was not repeated
        assert candidate.metrics["promotions"][-1]["at_pause"] and candidate.metrics["rung_seconds_saved"] > 0
    assert all(c.fitness is not None for c in ranked(candidates))
    event = next(e for e in archive.run_events() if e.kind == "rung_correlations")
    assert event.detail["correlations"][0]["n"] == len(promoted) + 1  # the promoted and the baseline
    saved = sum(c.metrics["rung_seconds_saved"] for c in candidates if c.metrics.get("rung_seconds_saved"))
    assert event.detail["seconds_saved"] == saved > 0
    assert summary.status == "finished"
    archive.close()
    from llm2.report.build import build_report

    assert "Fitness of every candidate" in build_report(tmp_path / "run").read_text(encoding="utf-8")


def test_the_ladder_is_the_task_rungs_then_the_full_evaluation():
    assert ladder_of(((0.5, 1), (0.25, 3), (1.0, 1)), seeds=2) == [Rung(0.25, 2), Rung(0.5, 1), Rung(1.0, 2)]
    assert ladder_of((), seeds=3) == [Rung(1.0, 3)]


def test_a_paused_run_is_the_rung_where_it_stops_and_the_full_evaluation_where_it_goes_on():
    """The same numbers: a run cut at half its budget gives exactly a half-budget run's result (weights, curves,
    loss trace); a run that trains on from the cut gives exactly a full run's from scratch. The cascade's probe is
    on in all four (it reads the weights, never changes the training). The small world: equalities hold on any."""
    task = load_task(TINY_TASK)
    settings = task.default_settings()
    task.prepare(settings)
    code = task.baselines["hinge"].code
    cuts = []
    with make_executor("local", task_spec=TINY_TASK, task=task, workers=2, warm_settings=settings) as executor:
        futures = [executor.submit(EvalJob(code, EvalSetting(settings, 1, 0.5))),
                   executor.submit(EvalJob(code, EvalSetting(settings, 1, 1.0))),
                   executor.submit(EvalJob(code, EvalSetting(settings, 1, 1.0), pauses=(0.5,),
                                           on_pause=lambda budget, cut: cuts.append((budget, cut)) or True)),
                   executor.submit(EvalJob(code, EvalSetting(settings, 1, 1.0), pauses=(0.5,),
                                           on_pause=lambda budget, cut: False))]
        rung, full, went_on, stopped = [future.result() for future in futures]
    assert all(r.status == "ok" for r in (rung, full, went_on, stopped)), (rung, full, went_on, stopped)
    assert went_on.metrics == full.metrics and went_on.curves == full.curves and went_on.loss_trace == full.loss_trace
    assert [budget for budget, _ in cuts] == [0.5] and cuts[0][1].metrics == rung.metrics
    assert stopped.metrics == rung.metrics and stopped.curves == rung.curves and stopped.loss_trace == rung.loss_trace
    assert rung.metrics != full.metrics  # half the training is not the whole: the comparison above can fail
    # the probe of a run along the rungs is the full run's (at a quarter of the whole budget), paused or not
    assert went_on.probe_fitness == stopped.probe_fitness == full.probe_fitness is not None


def test_a_task_that_cannot_pause_is_retrained_and_one_that_can_goes_on_with_the_same_numbers(tmp_path):
    """An outside task whose train knows nothing of pauses: a promoted candidate is trained again at the next rung
    (asked to pause anyway, its run fails closed). The same task with a train that pauses, over two one-seed rungs:
    a promoted candidate trains on from each cut, and every rung's fitness and its full fitness are those of the
    retraining run."""
    losses = {"cauchy": "torch.log1p((prediction - target) ** 2)",
              "pseudo_huber": "torch.sqrt(1 + (prediction - target) ** 2) - 1",
              "clipped": "torch.clamp((prediction - target).abs(), max=1.0)",
              "power": "(prediction - target).abs() ** 1.5", "quartic": "(prediction - target) ** 4 / 100",
              "log_cosh": "torch.log(torch.cosh(prediction - target))"}
    replies = tmp_path / "replies.jsonl"
    replies.write_text("".join(json.dumps({"thought": "robust", "name": name, "code":
                                           f"def {name}(prediction, target):\n    return {body}\n"}) + "\n"
                               for name, body in losses.items()), encoding="utf-8")
    runs = {}
    for name in ("RungRegression", "PausingRegression"):
        config = DiscoveryConfig(task=f"{PAUSING_TASKS}:{name}", generations=2, population=3, seeds=2, rungs=True,
                                 race=False, baselines=("squared", "absolute"))
        archive, summary = run_discovery(tmp_path / name, config, ReplayProposer(replies))
        assert summary.status == "finished"
        runs[name] = {c.name: c for c in archive.candidates()}
        archive.close()
    retrained, went_on = runs["RungRegression"], runs["PausingRegression"]
    promoted = [c for c in retrained.values() if c.fitness is not None]
    assert len(promoted) >= 3 and any(c.stage == "rung" for c in retrained.values())
    for candidate in promoted:  # judged when the rung's run was back; the full evaluation started from scratch
        assert candidate.metrics["rung_seconds_saved"] == 0
        assert not any(e.get("at_pause") for e in candidate.metrics["promotions"])
    top = [c for c in went_on.values() if c.fitness is not None]
    assert top and any(c.stage == "rung" for c in went_on.values())
    for candidate in top:
        assert all(e["at_pause"] and e["promoted"] for e in candidate.metrics["promotions"])
        assert len(candidate.metrics["promotions"]) == 2 and candidate.metrics["rung_seconds_saved"] > 0
        twin = retrained[candidate.name]
        assert candidate.metrics["rung_fitness"][1] == twin.metrics["rung_fitness"][0]  # both at half the budget
        if twin.fitness is not None:
            assert candidate.metrics["fitness_per_seed"] == twin.metrics["fitness_per_seed"]
    assert any(retrained[c.name].fitness is not None for c in top if c.generation > 0)

    task = load_task(f"{PAUSING_TASKS}:RungRegression")
    with make_executor("local", task_spec=f"{PAUSING_TASKS}:RungRegression", task=task, workers=1) as executor:
        result = executor.submit(EvalJob(task.baselines["squared"].code, EvalSetting(task.default_settings()),
                                         pauses=(0.5,), on_pause=lambda budget, cut: True)).result()
    assert result.status == "failed" and "ended without pausing at budget 0.5" in result.error


def test_seed_racing_stops_only_the_clearly_worse_and_trains_no_seed_twice(tmp_path):
    """--race: every proposal trains its first seed; its second only if that first seed, raised by the largest rise
    to a full mean seen so far, could still reach the best full evaluation. A promoted candidate's first seed is
    carried up, not trained again."""
    config = DiscoveryConfig(task=TINY_TASK, generations=3, population=3, seeds=2, baselines=("dpo", "hinge", "ipo"),
                             race=True, task_settings={"fitness": "judge"})  # any fitness: the judge traces no frontier
    archive, summary = run_discovery(tmp_path, config, make_proposer("symbolic", seed=0))
    candidates = archive.candidates()
    for baseline in (c for c in candidates if c.generation == 0):  # the yardstick: always both seeds
        assert len(baseline.metrics["fitness_per_seed"]) == 2 and baseline.fitness is not None
    judged = [c for c in candidates if c.generation > 0 and c.metrics.get("promotions") and c.status != "duplicate"]
    stopped = [c for c in judged if not c.metrics["promotions"][-1]["promoted"]]
    promoted = [c for c in judged if c.metrics["promotions"][-1]["promoted"]]
    assert stopped and promoted, [(c.name, c.metrics.get("promotions")) for c in judged]
    for candidate in stopped:
        evidence = candidate.metrics["promotions"][-1]
        assert evidence["rule"] == "noise" and evidence["pairs"] >= 3
        assert evidence["fitness"] + evidence["margin"] < evidence["best_full"]
        assert candidate.status == "ok" and candidate.stage == "rung" and candidate.fitness is None
        assert len(candidate.metrics["fitness_per_seed"]) == 1  # the second seed was never trained
        assert "its other seeds were not trained" in candidate.feedback
    for candidate in promoted:
        per_seed = candidate.metrics["fitness_per_seed"]
        assert len(per_seed) == 2 and per_seed[0] == candidate.metrics["rung_fitness"][0]  # carried, not retrained
        assert candidate.fitness == sum(per_seed) / 2
    # the margin is what was measured: the largest rise from the first seed to the mean among full evaluations
    full = [c for c in candidates if c.fitness is not None and len(c.metrics.get("rung_fitness") or []) == 2]
    assert max(e["margin"] for c in stopped for e in c.metrics["promotions"]) <= max(
        c.fitness - c.metrics["rung_fitness"][0] for c in full) + 1e-12
    assert summary.status == "finished"
    # a resumed run's ladder starts from the evidence recorded, not from nothing (it would promote everything)
    from llm2.discovery.driver import EvaluationDriver

    task = load_task(TINY_TASK)
    resumed = EvaluationDriver(archive, task, None, EvalSetting(task.settings_from_dict(config.task_settings)),
                               config.training_seeds(), race=True).evaluator
    assert resumed._best_full == max(c.fitness for c in full if c.status != "duplicate")
    assert sorted(resumed._shifts[0]) == sorted(c.fitness - c.metrics["rung_fitness"][0] for c in full
                                                if c.status != "duplicate")
    archive.close()
