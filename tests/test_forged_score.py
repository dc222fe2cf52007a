"""The forged-score attack (tests/hostile/forged_score.py) through the real sandbox, static checks off, at the full
training budget: a candidate rebuilds the gold reward of preference-synthetic from the public world seed, finds the
training pairs through sys.modules and trains on the labels that reward gives. The hidden reward now mixes in the
world secret, so the rebuild is noise and the attack scores no better than dpo; the same attack handed the true
hidden reward (what knowing the secret would give) beats dpo clearly, so this test would see a forgery."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from llm2.evaluation import EvalJob
from llm2.execution import make_executor
from llm2.sandbox.limits import GIB, SandboxLimits
from llm2.tasks import load_task
from llm2.task_api.base import EvalSetting
from llm2.tasks.preference.catalog import OBJECTIVES
from llm2.tasks.preference_synthetic.world import load_world

ATTACK = (Path(__file__).parent / "hostile" / "forged_score.py").read_text()
TASK = load_task("preference-synthetic")
SETTINGS = TASK.parse_settings({"fitness": "judge"})  # the attack is measured on the judge
SEEDS = (0, 1)
# "Within noise": dpo's judge score varies by about 0.003 between training seeds; the attack before the secret
# gained 0.05.
MARGIN = 0.01


def attack_knowing(rewards) -> str:
    return ATTACK.replace("@KNOWN_REWARDS@", ",".join(f"{value:.9g}" for value in rewards.tolist()))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_gold_reward_rebuilt_from_the_public_seed_forges_no_score():
    TASK.prepare(SETTINGS)
    hidden = load_world(TASK.world_config, SETTINGS.world_seed).token_rewards  # the trusted test process's
    codes = {"dpo": OBJECTIVES["dpo"].code, "rebuilt": ATTACK, "knowing the secret": attack_knowing(hidden)}
    limits = SandboxLimits(timeout_s=120.0, memory_bytes=2 * GIB, output_bytes=1 << 20)
    with make_executor("local", task_spec="preference-synthetic", task=TASK, workers=2, timeout_s=120.0,
                       limits=limits, cascade=False, static_checks=False, warm_settings=SETTINGS) as executor:
        futures = {(name, seed): executor.submit(EvalJob(code, EvalSetting(SETTINGS, seed), f"{name}-{seed}"))
                   for name, code in codes.items() for seed in SEEDS}
        results = {key: future.result() for key, future in futures.items()}
    assert all(r.status == "ok" for r in results.values()), {k: r.error for k, r in results.items()}
    score = {name: statistics.fmean(results[(name, seed)].fitness for seed in SEEDS) for name in codes}
    print(score)
    assert score["rebuilt"] <= score["dpo"] + MARGIN
    assert score["knowing the secret"] > score["dpo"] + 2 * MARGIN, "the attack itself works where it knows"
