"""The reward-design task: batched dynamics against gymnasium's own environments step for step, the contract's
checks and domain randomisation, scoring (true goal on held-out dynamics, names re-checked), the reflection text,
the offline proposer, the export as a gymnasium wrapper that trains in a plain loop, and a hacked reward."""

from __future__ import annotations

import json

import gymnasium
import numpy as np
import pytest
import torch

from llm2.archive.export import export_entries
from llm2.archive.records import CandidateRecord, RunInfo
from llm2.discovery.parse import parse_reply
from llm2.trusted import evaluate_trusted
from llm2.proposers.base import Message, ProposalRequest, ScoredCandidate
from llm2.sandbox.loader import load_function
from llm2.sandbox.static_checks import static_check
from llm2.tasks import load_task
from llm2.task_api.base import CandidateError, EvalSetting, TrainOutput
from llm2.tasks.reward_design.envs import ENVS, BatchEnv, dynamics_ranges
from llm2.tasks.reward_design.proposer import RewardDesignOfflineProposer, read_spec
from llm2.tasks.reward_design.rewards import BASELINES, FUNCTIONS
from llm2.tasks.reward_design.score import reflection_values
from llm2.tasks.reward_design.settings import RewardDesignSettings
from llm2.task_api.settings import SettingsError
from testkit import import_file, invoke_llm2

TASK = load_task("reward-design")
HACKED = ("def reward(obs, action, next_obs, terminated):\n"
          "    return {'speed': 100.0 * next_obs[:, 1].abs()}\n")  # pays for velocity, never for the flag


# -- the dynamics, step for step against gymnasium ------------------------------------------------------------------
@pytest.mark.parametrize("env_name", ["mountain_car", "pendulum"])
def test_batched_dynamics_match_gymnasium_step_for_step(env_name):
    spec = ENVS[env_name]
    gym_env = gymnasium.make(spec.gym_id).unwrapped
    rng = np.random.default_rng(0)
    ours = BatchEnv(spec, 1, torch.Generator().manual_seed(0))
    for episode in range(3):
        obs, _ = gym_env.reset(seed=episode)
        ours.state[0] = torch.tensor(np.asarray(gym_env.state, dtype=np.float64))
        ours.t[0] = 0
        assert np.allclose(ours.observe()[0].numpy(), obs, atol=1e-6)
        for step in range(300):
            action = rng.uniform(-1.5, 1.5, size=1).astype(np.float32) * spec.action_bound  # clipping too
            gym_obs, gym_reward, gym_terminated, _, _ = gym_env.step(action)
            before = ours.observe()
            our_obs, our_terminated, _ = ours.step(torch.tensor(action)[None])
            assert np.allclose(our_obs[0].numpy(), gym_obs, rtol=1e-5, atol=1e-6), (episode, step)
            assert bool(our_terminated[0]) == gym_terminated
            terms = FUNCTIONS["environment"](before, torch.tensor(action).clamp(-spec.action_bound,
                                                                                spec.action_bound)[None],
                                             our_obs, our_terminated)
            if abs(float(action[0])) <= spec.action_bound:  # gymnasium's car penalises the unclipped action
                assert float(sum(terms.values())[0]) == pytest.approx(gym_reward, rel=1e-4, abs=1e-5)
            # gymnasium's state from here on, so a float32 rounding never compounds into a different trajectory
            ours.state[0] = torch.tensor(np.asarray(gym_env.state, dtype=np.float64))
            if gym_terminated:
                break


def test_episodes_draw_their_dynamics_from_the_ranges_and_reset_starts_like_gymnasium():
    spec = ENVS["mountain_car"]
    env = BatchEnv(spec, 500, torch.Generator().manual_seed(1), dynamics_ranges(spec, "heldout"))
    power = env.params["power"]
    assert 0.0011 <= float(power.min()) and float(power.max()) <= 0.0014 and float(power.std()) > 0
    assert bool(((env.state[:, 0] >= -0.6) & (env.state[:, 0] <= -0.4)).all()) and bool((env.state[:, 1] == 0).all())
    nominal = BatchEnv(spec, 4, torch.Generator().manual_seed(1))
    assert bool((nominal.params["power"] == 0.0015).all())


# -- settings, contract ---------------------------------------------------------------------------------------------
def test_settings_parse_and_refuse_bad_options():
    settings = TASK.parse_settings({"env": "pendulum", "steps": "5000"})
    assert settings.total_steps == 5000 and RewardDesignSettings().total_steps == 100_000
    for bad in ({"env": "cartpole"}, {"dynamics": "moon"}, {"steps": "10"}):
        with pytest.raises(SettingsError):
            TASK.parse_settings(bad)
    assert "scoring set" not in TASK.setting_text(RewardDesignSettings())  # the discovery's own is never shown
    assert "scoring set 7" in TASK.setting_text(RewardDesignSettings(eval_seed=7))


def test_heldout_settings_differ_in_one_knob():
    base = RewardDesignSettings()
    for other in TASK.heldout_settings(base):
        changed = [k for k in ("env", "steps", "envs", "dynamics", "episodes", "eval_seed")
                   if getattr(other, k) != getattr(base, k)]
        assert len(changed) == 1 and changed[0] in ("eval_seed", "dynamics")
    assert len(TASK.heldout_settings(base)) == 6  # the fewest an exact sign-flip over settings can call at 0.05


def test_the_scored_episodes_come_from_the_world_secret(tmp_path, monkeypatch):
    """The scoring seed is unknowable from public code: another secret, other scored episodes."""
    import os

    from llm2.task_api import world_secret
    from llm2.tasks.reward_design.score import scoring_seed

    settings = RewardDesignSettings()
    # loading a secret publishes its fingerprint in the environment: restore it afterwards, as it was
    monkeypatch.setenv(world_secret.FINGERPRINT_ENV, os.environ.get(world_secret.FINGERPRINT_ENV, ""))
    seeds = []
    for text in ("a" * 40, "b" * 40):
        path = tmp_path / text[0]
        path.write_text(text)
        os.chmod(path, 0o600)
        monkeypatch.setenv(world_secret.SECRET_ENV, str(path))
        monkeypatch.setattr(world_secret, "_loaded", None)
        seeds.append((scoring_seed(settings, "heldout"), scoring_seed(settings, "heldout"),
                      scoring_seed(settings, "nominal")))
    assert seeds[0][0] == seeds[0][1] != seeds[0][2]  # reproducible under one secret, one per dynamics
    assert seeds[0][0] != seeds[1][0]


@pytest.mark.parametrize("env_name", ["mountain_car", "pendulum"])
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_pass_the_contract_on_both_environments(env_name, name):
    fn = load_function(BASELINES[name].code, TASK.contract)
    TASK.check_contract(fn, TASK.training_data(RewardDesignSettings(env=env_name)))
    assert static_check(BASELINES[name].code, TASK.contract) == []


@pytest.mark.parametrize("code, reason", [
    ("def r(obs, action, next_obs, terminated):\n    return obs[:, 0]\n", "dict of 1 to 8"),
    ("def r(obs, action, next_obs, terminated):\n    return {'a b': obs[:, 0]}\n", "name must be"),
    ("def r(obs, action, next_obs, terminated):\n    return {'x': obs}\n", "shape"),
    ("def r(obs, action, next_obs, terminated):\n    return {'x': obs[:, 0] / 0}\n", "not finite"),
    ("def r(obs, action, next_obs, terminated):\n    return {'x': terminated}\n", "not a float tensor"),
    ("DOMAIN_RANDOMIZATION = {'power': (0.0001, 0.0015)}\n"
     "def r(obs, action, next_obs, terminated):\n    return {'x': obs[:, 0]}\n", "outside the declared bounds"),
    ("DOMAIN_RANDOMIZATION = {'mass': (1.0, 1.0)}\n"
     "def r(obs, action, next_obs, terminated):\n    return {'x': obs[:, 0]}\n", "parameters are power, gravity"),
])
def test_contract_rejects_broken_rewards_with_a_reason(code, reason):
    with pytest.raises(CandidateError, match=reason) as caught:
        TASK.check_contract(load_function(code, TASK.contract), TASK.training_data(RewardDesignSettings()))
    assert caught.value.stage == "contract"


# -- training and scoring -------------------------------------------------------------------------------------------
SHORT = RewardDesignSettings(steps=8192, episodes=16)


def test_training_is_deterministic_returns_its_spec_and_the_probe_can_stop_it():
    data = TASK.training_data(SHORT)
    fn = FUNCTIONS["shaped"]
    first = TASK.train(fn, data, EvalSetting(SHORT, seed=3))
    again = TASK.train(fn, data, EvalSetting(SHORT, seed=3))
    spec = TASK.output_spec(data)
    assert set(first.weights) == set(spec) and first.stop_reason is None
    assert all(tuple(t.shape) == spec[k].shape for k, t in first.weights.items())
    assert all(torch.equal(first.weights[k], again.weights[k]) for k in spec)
    calls = []
    stopped = TASK.train(fn, data, EvalSetting(SHORT, seed=3), checkpoint=lambda out: calls.append(out.steps) or False)
    assert calls == [4096] and "probe" in stopped.stop_reason


def test_domain_randomisation_reaches_the_training_environments():
    code = ("DOMAIN_RANDOMIZATION = {'power': (0.001, 0.001)}\n"
            "def reward(obs, action, next_obs, terminated):\n    return {'v': next_obs[:, 1] - obs[:, 1]}\n")
    # with a weaker engine the same policy gains less speed per step: the term's means differ from nominal
    plain = code.split("\n", 1)[1]
    means = [evaluate_trusted(TASK, c, EvalSetting(SHORT)).metrics.values["term.v"] for c in (code, plain)]
    assert means[0] != means[1]


def test_scorer_rechecks_term_names_and_refuses_unusable_weights():
    output = TASK.train(FUNCTIONS["environment"], TASK.training_data(SHORT), EvalSetting(SHORT))
    weights = dict(output.weights)
    names = weights["stats.term_names"].clone()
    names[0, :5] = torch.tensor(list(b"<b>x\x1b"), dtype=torch.uint8)  # what a subverted child might send
    values = reflection_values({**weights, "stats.term_names": names})
    assert "term.term0" in values and not any("<" in key for key in values)
    broken = {k: v for k, v in weights.items() if k != "actor.net.0.weight"}
    with pytest.raises(CandidateError, match="cannot be used"):
        TASK.scorer(SHORT).score(TrainOutput(broken, [], 1))


def test_reflection_text_names_the_goal_the_failures_the_curve_and_each_term():
    values = {"success_rate": 0.25, "steps_to_goal": 800.0, "nominal_success": 0.5, "fail_share": 0.75,
              "fail_highest_position": -0.2, **{f"train_success_{i}": i / 10 for i in range(9)},
              "term.goal": 0.1, "term_first.goal": 0.0, "term_last.goal": 0.3, "term.goal_std": 0.0}
    text = TASK.metrics_text(values)
    assert "held-out success 0.250" in text and "nominal dynamics 0.500" in text
    assert "position -0.20" in text and "0.80 -" in text  # the ninth tenth, then a tenth without an ending
    assert "goal +0 → +0.3 (mean +0.1)" in text and "goal_std" not in text


@pytest.mark.slow
def test_a_reward_that_pays_for_velocity_scores_below_the_shaped_baseline():
    # at 100,000 steps the speed-seeking policy still reaches the flag (seed 0: in every episode); by 150,000 it has
    # learned to turn back before it (reaching it ends the episode, and its pay)
    settings = RewardDesignSettings(steps=150_000, episodes=100)
    hacked = evaluate_trusted(TASK, HACKED, EvalSetting(settings, seed=0))
    shaped = evaluate_trusted(TASK, BASELINES["shaped"].code, EvalSetting(settings, seed=0))
    assert hacked.status == shaped.status == "ok"
    assert shaped.fitness >= 0.9 and hacked.fitness < shaped.fitness - 0.5, (hacked.fitness, shaped.fitness)
    assert hacked.metrics.values["term.speed"] > 0  # it did learn what it was paid for


# -- the offline proposer -------------------------------------------------------------------------------------------
def _history(fitness: dict[str, float]) -> list[ScoredCandidate]:
    return [ScoredCandidate(name, BASELINES[name].code, value, "baseline") for name, value in fitness.items()]


@pytest.mark.parametrize("setting_line, env_name", [
    ("MountainCarContinuous-v0, 150,000 PPO steps", "mountain_car"), ("Pendulum-v1, 200,000 PPO steps", "pendulum")])
def test_offline_proposer_replies_parse_load_and_are_reproducible(setting_line, env_name):
    history = _history({"environment": 0.0, "sparse": 0.4, "shaped": 0.9})
    data = TASK.training_data(RewardDesignSettings(env=env_name))
    replies = []
    for index in range(10):
        request = ProposalRequest((Message("user", f"... ({setting_line} on 64 environments) ..."),),
                                  tuple(history), 1.0, seed=index)
        reply = RewardDesignOfflineProposer(seed=1).propose(request)
        assert RewardDesignOfflineProposer(seed=1).propose(request).text == reply.text
        parsed = parse_reply(reply.text)
        assert list(json.loads(reply.text)) == ["thought", "name", "code"] and parsed.repairs == ()
        assert static_check(parsed.code, TASK.contract) == []
        TASK.check_contract(load_function(parsed.code, TASK.contract), data)
        assert read_spec(env_name, parsed.name, parsed.code) is not None
        history.append(ScoredCandidate(parsed.name, parsed.code, 0.5, "ok", parsed.thought))
        replies.append(reply.text)
    assert len(set(replies)) == len(replies)


# -- figures --------------------------------------------------------------------------------------------------------
def test_figures_draw_curves_and_terms_from_recorded_numbers_or_say_what_is_missing(tmp_path):
    from llm2.report.figures import Figure, FigureContext, MissingFigure
    from llm2.tasks.reward_design.figures import reward_design_figures

    def record(number: int, name: str, status: str, metrics: dict) -> CandidateRecord:
        return CandidateRecord(number, 0, number, "p", "", name, "code", "h", status, "done", None, None, 0.5, None,
                               metrics, 1.0, 0, 0, 0.0, (), None, 0.0, None)

    run = RunInfo("run", TASK.name, "reward-design-offline", "", {}, {}, {}, 0.0, None, "finished")
    empty = FigureContext(run, tmp_path, TASK.name, RewardDesignSettings(), [], [], [], None, tmp_path)
    assert all(isinstance(f, MissingFigure) for f in reward_design_figures(TASK, empty))
    curve = {f"train_success_{i}": i / 9 for i in range(1, 10)}  # the first tenth had no ending episode
    records = [record(1, "shaped", "baseline", {**curve, "term.goal": 0.5, "term.energy_shaping": -0.2}),
               record(2, "mine", "ok", {**curve, "term.speed": 1.0, "term.speed_std": 0.1}),
               record(3, "mine", "ok", {"term.goal": 0.1})]
    full = FigureContext(run, tmp_path, TASK.name, RewardDesignSettings(), records, [], records[1:], None, tmp_path)
    figures = reward_design_figures(TASK, full)
    assert all(isinstance(f, Figure) and (tmp_path / f.file).stat().st_size > 1000 for f in figures)


# -- export ---------------------------------------------------------------------------------------------------------
def test_exported_wrapper_trains_a_policy_in_a_plain_gymnasium_loop(tmp_path):
    run = RunInfo("run-1", TASK.name, "reward-design-offline", "", {}, {}, {}, 0.0, None, "finished")
    candidate = CandidateRecord(1, 0, 0, "reward-design-offline", "energy shaping", "Shaped Copy",
                                BASELINES["shaped"].code, "h", "ok", "done", None, None, 1.0, None, {}, 1.0, 0, 0,
                                0.0, (), None, 0.0, None)
    text = TASK.export_module(export_entries([candidate], run, TASK), run, "rewards.py")
    (tmp_path / "rewards.py").write_text(text)
    module = import_file(tmp_path / "rewards.py", "rewards_export_test")
    env = module.DiscoveredReward(gymnasium.make("MountainCarContinuous-v0", max_episode_steps=400),
                                  module.OBJECTIVES["shaped_copy"])
    assert isinstance(env, gymnasium.RewardWrapper)

    def episode(gain: float, seed: int) -> tuple[float, bool]:  # a one-parameter policy: push along the velocity
        obs, _ = env.reset(seed=seed)
        total, terminated, truncated, info = 0.0, False, False, {}
        while not (terminated or truncated):
            obs, reward, terminated, truncated, info = env.step(np.array([np.clip(gain * obs[1], -1, 1)],
                                                                         dtype=np.float32))
            total += reward
        assert set(info["reward_terms"]) == {"goal", "action_cost", "energy_shaping"}
        assert reward == pytest.approx(sum(info["reward_terms"].values()))
        return total, terminated

    # random search on the gain, judged by the wrapped reward alone (a plain gymnasium training loop)
    rng = np.random.default_rng(0)
    best_gain, best_return = 0.0, episode(0.0, 0)[0]
    for _ in range(10):
        gain = float(rng.normal(best_gain, 100.0))
        value = episode(gain, 0)[0]
        if value > best_return:
            best_gain, best_return = gain, value
    assert episode(best_gain, 1)[1] and not episode(0.0, 1)[1]  # the trained policy reaches the flag


@pytest.mark.slow
def test_an_evaluation_through_the_sandbox_scores_the_trained_policy(tmp_path):
    out = tmp_path / "results.json"
    invoke_llm2("evaluate", "--task", "reward-design", "--objective", "shaped", "--seeds", "1", "--workers", "1",
                "-o", "steps=4096", "-o", "episodes=8", "--json", str(out))
    rows = json.loads(out.read_text())
    row = next(r for r in rows["results"] if r["objective"] == "shaped")
    assert row["status"] == "ok" and "seccomp" in row["sandbox"], row
    assert 0.0 <= row["fitness_mean"] <= 1.0 and 0 < row["metrics"]["steps_to_goal"]["mean"] <= 999
    assert rows["references"][0]["values"]["fail_share"] == 1.0  # the untrained policy never reaches the flag
