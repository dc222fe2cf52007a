"""``llm2 heldout``: candidates against the task's reference on its held-out suite, with honest statistics — the
verdict names the fitness it compared on and says how the other numbers moved."""

from __future__ import annotations

import json
import subprocess
import time

from llm2.archive import Archive, CandidateRecord, RunInfo
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.evaluations import CandidateOutcome
from llm2.heldout import compare
from llm2.tasks import load_task
from llm2.tasks.card import TaskCard
from testkit import LLM2


def outcome(fitness, **values) -> CandidateOutcome:
    return CandidateOutcome("ok", "done", None, fitness, 0.0, dict(values))


def test_the_verdict_names_the_fitness_and_the_price_paid_on_the_other_numbers():
    """A candidate that wins on the judge while its KL is far higher: the verdict says both (the preference task's
    columns: gold reward and naturalness higher is better, KL lower)."""
    task = load_task("preference-synthetic")
    candidate = CandidateRecord(1, 1, 1, "p", "", "greedy", "x", "h", "ok", "done", None, None, 0.8, 0.0, {}, 1.0, 0,
                                0, 0.0, (), None, 0.0, None)
    keys = [(setting, seed) for setting in range(4) for seed in range(2)]
    mine = {k: outcome(0.80 + 0.01 * k[0], gold_reward=0.9, naturalness=0.88, kl=12.0 + k[1]) for k in keys}
    theirs = {k: outcome(0.75 + 0.01 * k[0], gold_reward=0.8, naturalness=0.88, kl=3.0 + k[1]) for k in keys}
    mine[(3, 1)] = CandidateOutcome("failed", "train", "diverged", None, None)  # a failed run loses its pair
    verdict = compare(task, candidate, mine, "dpo", theirs, [f"β = {b}" for b in (0.01, 0.025, 0.1, 0.5)], 2,
                      "judge score")
    assert verdict.pairs == 8 and verdict.failures == 1 and verdict.win_rate == 7 / 8
    assert verdict.verdict == "better than dpo on judge score"
    words = {c.label: c.word for c in verdict.columns}
    assert words == {"gold reward": "higher", "naturalness": "no significant difference", "KL": "higher"}
    assert verdict.settings[0].candidate == {"fitness": 0.80, "gold_reward": 0.9, "naturalness": 0.88, "kl": 12.5}
    assert verdict.settings[3].candidate["fitness"] == "failed" and verdict.settings[3].reference["kl"] == 3.5


# Ignores the labels: it pushes every logit of every class down alike, so it learns nothing about the digits.
IGNORES_LABELS = "def ignores_labels(logits, targets):\n    return logits.mean(dim=1) * 0.0 + logits.sum(dim=1) ** 2\n"


def make_run(run_dir, candidates: dict[str, str]) -> None:
    task = load_task("classification")
    settings = task.default_settings()
    config = DiscoveryConfig(task="classification", seeds=1, task_settings={"label_noise": settings.label_noise})
    info = RunInfo(run_id="heldout-test", task=config.task, proposer="classification-offline", model="",
                   config=config.to_dict(), seeds={}, versions={}, started_at=time.time(), finished_at=None,
                   status="finished")
    with Archive.create(run_dir, info, TaskCard.of(task, settings).to_dict()) as archive:
        reference = archive.add_candidate(generation=0, proposer="catalog", thought="", name="cross_entropy",
                                          code=task.baselines["cross_entropy"].code)
        archive.finish_candidate(reference.id, status="baseline", stage="done", error=None, fitness=0.7,
                                 fitness_std=0.0, metrics={}, seconds=1.0, feedback=None)
        for rank, (name, code) in enumerate(candidates.items()):
            record = archive.add_candidate(generation=1, proposer="classification-offline", thought="", name=name,
                                           code=code)
            archive.finish_candidate(record.id, status="ok", stage="done", error=None, fitness=0.9 - rank / 10,
                                     fitness_std=0.0, metrics={}, seconds=1.0, feedback="")


def test_heldout_reports_win_rates_and_stores_points(tmp_path):
    task = load_task("classification")
    run_dir = tmp_path / "run"
    make_run(run_dir, {"gce_candidate": task.baselines["generalized_cross_entropy"].code,
                       "ignores_labels": IGNORES_LABELS})
    out = tmp_path / "heldout.json"
    result = subprocess.run([*LLM2, "heldout", str(run_dir), "--top", "2", "--seeds", "2", "--json", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    verdicts = {v["name"]: v for v in json.loads(out.read_text())}
    assert set(verdicts) == {"gce_candidate", "ignores_labels"}
    pairs = len(task.heldout_settings(task.default_settings()))
    for v in verdicts.values():
        assert v["pairs"] == 2 * pairs >= 8 and v["reference"] == "cross_entropy"
        assert v["win_low"] <= v["win_rate"] <= v["win_high"]
    bad = verdicts["ignores_labels"]
    assert bad["win_rate"] == 0.0 and bad["verdict"] == "worse than cross_entropy on test accuracy"
    assert bad["test"]["mean_diff"] < 0 and bad["test"]["p_value"] < 0.05
    with Archive.open(run_dir, readonly=True) as archive:
        points = archive.evaluations(suite="heldout")
    assert len(points) == 3 * 2 * pairs
    assert {p.candidate_name for p in points} == {"cross_entropy", "gce_candidate", "ignores_labels"}
    assert len({p.setting["label_noise"] for p in points}) >= 3 and len({p.setting["data_seed"] for p in points}) >= 2
    assert all(p.sandbox for p in points if p.status == "ok")
    assert "win rate" in result.stdout and "ignores_labels" in result.stdout and "per held-out setting" in result.stdout
