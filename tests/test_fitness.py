"""The preference-synthetic fitnesses that cannot be won by speed: frontier-gap (the judge minus dpo's frontier at
the same KL) and judge-peak (the best checkpoint of a longer run, chosen on some prompts, reported on others).

Training and scoring run in this process (trusted catalog code); the sandboxed path is the same ``train`` and
``score`` the other tests of the task cover. The slow tests run on the task's default setting and fitness
(frontier-gap): they follow the default, and share the one dpo frontier the suite traces (about 110 core-seconds on
first use, over the cores, then cached in LLM2_CACHE_DIR); apart from tests/test_frontier_trace.py's tiny ones,
no other test traces one.
"""

from __future__ import annotations

import math

import pytest
import torch

from llm2.archive.records import CandidateRecord
from llm2.commands.discover import best_sentence
from llm2.discovery.loop import RunSummary
from llm2.frontier import Envelope, Point
from llm2.tasks import load_task
from llm2.task_api.base import EvalSetting, Metrics
from llm2.tasks.preference.losses import dpo, hinge
from llm2.tasks.preference_synthetic.config import PreferenceSettings
from llm2.tasks.preference_synthetic.peak import pack, peak_spec, score_peak, unpack
from llm2.tasks.preference_synthetic.reference_frontier import ReferenceFrontier
from llm2.tasks.preference_synthetic.task import PreferenceSyntheticTask
from llm2.tasks.preference_synthetic.world import load_world

BETA = 0.05


def _frontier(*seeds):
    return ReferenceFrontier(tuple(Envelope.of([Point(*p) for p in s]) for s in seeds),
                             tuple(Envelope.of([Point(*p) for p in s]) for s in seeds))


def test_the_gap_is_the_judge_minus_the_mean_of_the_seeds_frontiers_at_the_same_kl():
    frontier = _frontier([(0.0, 0.4), (2.0, 0.6), (4.0, 0.8)], [(0.0, 0.4), (2.0, 0.7), (4.0, 0.8)])
    gap = frontier.gap(kl=3.0, judge=0.75)  # seed 0: 0.7, seed 1: 0.75
    assert gap.frontier == pytest.approx(0.725) and gap.gap == pytest.approx(0.025)
    # the seeds' spread there, stdev(0.7, 0.75) = 0.03536, with one point's scatter about its neighbours: the
    # middle points sit 0.0 and 0.1 off the lines through theirs, sqrt(mean(0, 0.01) / 1.5) = 0.05774
    assert gap.noise == pytest.approx(math.hypot(0.0353553, 0.0577350), rel=1e-4)
    assert frontier.gap(kl=9.0, judge=0.8).gap == pytest.approx(0.0)  # past dpo's dearest point: its best
    assert frontier.gap(kl=-0.01, judge=0.4).gap == pytest.approx(0.0)  # a KL a hair below 0 sits at the start


def test_judge_peak_packs_checkpoints_under_one_spec_and_unpacks_them_in_order():
    spec = {"w": "spec-w", "b": "spec-b"}
    assert set(peak_spec(spec, 3)) == {"w", "b", "checkpoint0.w", "checkpoint0.b", "checkpoint1.w", "checkpoint1.b"}
    first, second, last = ({"w": torch.full((2,), float(i)), "b": torch.zeros(1)} for i in range(3))
    packed = pack([first, second], last)
    assert set(packed) == set(peak_spec(spec, 3))
    unpacked = unpack(packed, 3)
    assert [float(c["w"][0]) for c in unpacked] == [0.0, 1.0, 2.0] and all(set(c) == {"w", "b"} for c in unpacked)


def test_the_new_fitnesses_are_settings_with_their_own_texts():
    task = PreferenceSyntheticTask()
    for fitness in ("frontier-gap", "judge-peak"):
        settings = task.parse_settings({"fitness": fitness})
        assert settings.fitness == fitness
    assert task.texts_for(PreferenceSettings(fitness="frontier-gap")).fitness_name == "judge gap to dpo's frontier"
    assert "selection" not in task.texts_for(PreferenceSettings(fitness="judge-peak")).fitness  # plain words
    with pytest.raises(ValueError, match="fitness must be one of"):
        PreferenceSettings(fitness="speed")


def test_the_end_of_run_words_place_the_best_against_dpos_frontier():
    task = PreferenceSyntheticTask()
    values = {"judge": 0.790, "kl": 5.35, "frontier_judge": 0.801, "frontier_noise": 0.004}
    assert task.placement_text(values) == ("judge 0.790 @ KL 5.35: 0.011 below dpo's frontier at that KL "
                                           "(0.801 ± 0.004)")
    assert "within the noise" in task.placement_text({**values, "frontier_noise": 0.02})
    assert task.fitness_noise(values) == 0.004
    assert task.placement_text({"judge": 0.79, "kl": 5.35}) == "" and task.fitness_noise({}) == 0.0
    assert "below dpo's frontier" in task.metrics_text({**values, "gold_reward": 0.8})


def test_a_gap_probe_is_judged_by_the_margin_alone():
    task = PreferenceSyntheticTask()
    start = Metrics(0.0, {"frontier_judge": 0.4})
    # dpo's own probe gap is about 0 by construction: a candidate 0.03 below is on the frontier, not collapsed
    assert task.collapse_reason(Metrics(-0.03, {"frontier_judge": 0.5}), start, 0.001) is None
    assert "collapsed" in task.collapse_reason(Metrics(-0.2, {"frontier_judge": 0.5}), start, 0.001)


def test_judge_peak_chooses_on_the_selection_prompts_and_reports_on_the_others():
    task = load_task("preference-synthetic")
    task.prepare(PreferenceSettings(fitness="judge-peak"))  # judge-peak traces no dpo frontier
    world = load_world(task.world_config, 0)
    config = task.train_config
    flat = {name: torch.zeros_like(t) if name.endswith("head.weight") else t
            for name, t in world.reference_weights.items()}  # uniform next-token: reads as noise, low judge
    peak = score_peak(world, [flat, world.reference_weights, world.reference_weights], config,
                      task.scorer(task.default_settings()).tolerance)
    assert peak.chosen == 1  # the better, and the earliest of two equal ones
    start = task.scorer(PreferenceSettings(fitness="judge-peak")).reference_metrics()
    assert peak.scores.judge == pytest.approx(start.fitness)  # the evaluation prompts, as the start's score
    assert peak.selection_judge != pytest.approx(peak.scores.judge)  # other prompts, another number


# -- slow: dpo's frontier traced, dpo's variants and hinge scored on the default fitness ---------------------------

@pytest.fixture(scope="module")
def gap_task():
    task = load_task("preference-synthetic")
    settings = task.default_settings()  # the default fitness, whatever it is: these tests follow it
    assert settings.fitness == "frontier-gap" and settings.beta == BETA
    task.prepare(settings)
    return task, settings


@pytest.fixture(scope="module")
def dpo_gap(gap_task):
    task, settings = gap_task
    return _gap(task, settings, dpo, EvalSetting(settings))


def _gap(task, settings, fn, setting):
    output = task.train(fn, task.training_data(setting.task), setting)
    return task.scorer(setting.task).score(output)


def _three_dpo(*args):
    return 3.0 * dpo(*args)


def _dpo_at_beta(multiple):
    def loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):
        return dpo(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta * multiple)
    return loss


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["beta x0.7", "beta x1.5", "budget 0.9", "budget 1.4", "3 x dpo"])
def test_dpos_own_variants_are_never_better_than_dpo_on_the_default_fitness(gap_task, dpo_gap, variant):
    task, settings = gap_task
    reference = dpo_gap
    # a candidate is trained at the setting's beta: "dpo at another beta" is dpo that scales the beta it is given
    fn, setting = {"beta x0.7": (_dpo_at_beta(0.7), EvalSetting(settings)),
                   "beta x1.5": (_dpo_at_beta(1.5), EvalSetting(settings)),
                   "budget 0.9": (dpo, EvalSetting(settings, budget=0.9)),
                   "budget 1.4": (dpo, EvalSetting(settings, budget=1.4)),
                   "3 x dpo": (_three_dpo, EvalSetting(settings))}[variant]
    scored = _gap(task, setting.task, fn, setting)
    # never above dpo's frontier past the task's noise (the end-of-run words: "within the noise of dpo's frontier")
    assert scored.fitness <= task.fitness_noise(scored.values), (scored, reference)
    assert "above" not in task.placement_text(scored.values)
    # and close to dpo at the setting's own beta, which may itself sit a little below the frontier over beta
    assert abs(scored.fitness - reference.fitness) <= 0.015
    assert reference.fitness <= task.fitness_noise(reference.values)
    if variant == "budget 1.4":  # why the judge cannot be the fitness that passes this: it calls dpo trained
        # longer better than dpo, by far more than the frontier's noise (+0.061 at budget 1.25 on the world)
        assert scored.values["judge"] - reference.values["judge"] > 5 * task.fitness_noise(scored.values)


@pytest.mark.slow
def test_hinge_scores_within_noise_of_dpo_on_the_default_fitness(gap_task, dpo_gap):
    task, settings = gap_task
    reference = dpo_gap
    scored = _gap(task, settings, hinge, EvalSetting(settings))
    # on the judge alone hinge is above dpo (0.754 @ KL 3.55 vs 0.737 @ 3.09): it only moved further
    assert scored.values["judge"] > reference.values["judge"] and scored.values["kl"] > reference.values["kl"]
    # on the gap it is no better than dpo: within the task's noise of dpo's gap, and not above dpo's frontier
    assert scored.fitness - reference.fitness <= task.fitness_noise(scored.values), (scored, reference)
    assert scored.fitness <= task.fitness_noise(scored.values)


def _record(name, fitness, metrics):
    return CandidateRecord(id=1, generation=0, index=0, proposer="symbolic", thought="", name=name, code="",
                           code_hash="", status="ok", stage=None, error=None, duplicate_of=None, fitness=fitness,
                           fitness_std=None, metrics=metrics, seconds=None, prompt_tokens=0, completion_tokens=0,
                           cost_usd=0.0, reply_events=(), feedback=None, created_at=0.0, finished_at=None)


def test_the_end_of_run_sentence_names_fitness_setting_noise_and_place_against_the_frontier(tmp_path):
    task = PreferenceSyntheticTask()
    settings = PreferenceSettings(fitness="frontier-gap")
    best = _record("gated_hinge", -0.011, {"judge": 0.790, "kl": 5.35, "frontier_judge": 0.801,
                                           "frontier_noise": 0.004})
    reference = _record("dpo", 0.003, {"judge": 0.7385, "kl": 3.03, "frontier_judge": 0.735,
                                       "frontier_noise": 0.005})
    summary = RunSummary("finished", 10, 10, best, reference, "judge gap to dpo's frontier")
    sentence = best_sentence(summary, tmp_path, task, settings)
    assert "does not beat dpo 0.0030 on this run's fitness, judge gap to dpo's frontier" in sentence
    assert "judge 0.790 @ KL 5.35: 0.011 below dpo's frontier at that KL" in sentence
    assert "β = 0.05, world 0, label noise 0.2" in sentence
    close = _record("gated_hinge", 0.006, {**best.metrics, "judge": 0.807})
    assert "is within the noise (±0.0040) of dpo" in best_sentence(
        RunSummary("finished", 10, 10, close, reference, "judge gap"), tmp_path, task, settings)


def test_off_the_search_setting_a_search_fitness_is_judged_on_the_judge():
    task = PreferenceSyntheticTask()
    for fitness in ("frontier-gap", "judge-peak"):
        heldout = task.heldout_settings(PreferenceSettings(fitness=fitness))
        assert len(heldout) == 8 and {s.fitness for s in heldout} == {"judge"}
    assert {s.fitness for s in task.heldout_settings(PreferenceSettings(fitness="gold-reward"))} == {"gold-reward"}


def test_a_judge_peak_run_hands_back_every_checkpoint_under_the_spec_and_is_scored_on_its_best():
    task = load_task("preference-synthetic")
    settings = PreferenceSettings(fitness="judge-peak")
    task.prepare(settings)
    data = task.training_data(settings)
    spec = task.output_spec(data)
    probes = []

    def probe(output):
        probes.append(set(output.weights))
        return True

    output = task.train(dpo, data, EvalSetting(settings, 0, budget=0.02), probe)  # a few steps per checkpoint
    assert set(output.weights) == set(spec) and probes == [set(spec)]  # the probe too: one spec for both
    checkpoints = unpack(output.weights, len(task.train_config.peak_budgets))
    assert not torch.equal(checkpoints[0]["head.weight"], checkpoints[-1]["head.weight"])  # weights of one run
    metrics = task.scorer(settings).score(output)
    assert metrics.fitness == metrics.values["judge"] and metrics.values["peak_share"] in (0.5, 1.0, 1.5, 2.0, 2.5,
                                                                                          3.0)
    assert task.scorer(settings).score(output, quick=True).fitness > 0
