"""``llm2 heldout``: candidates against the task's reference on its held-out suite, with honest statistics — the
verdict names the fitness it compared on and says how the other numbers moved."""

from __future__ import annotations

import json
import subprocess
import time

from pathlib import Path

import pytest

from llm2.archive import Archive, CandidateRecord, RunInfo
from llm2.archive.records import EvaluationRecord
from llm2.commands.heldout import print_verdicts
from llm2.discovery.config import DiscoveryConfig
from llm2.execution import make_executor
from llm2.heldout import compare, run_heldout
from llm2.points import PointIndex
from llm2.tasks import load_task
from llm2.task_api.card import TaskCard
from testkit import LLM2


TASK_FILE = Path(__file__).parent / "verdict_task.py"
LEVELS = f"{TASK_FILE}:Levels"


def record(name: str, setting: dict, fitness, suite: str = "heldout", **values) -> EvaluationRecord:
    """An archive row as ``llm2 heldout`` writes it (fitness None: the run failed)."""
    record.ids = getattr(record, "ids", 0) + 1
    return EvaluationRecord(record.ids, name, "h", suite, setting, fitness, 1.0, "ok" if fitness is not None else
                            "failed", None if fitness is not None else "diverged", dict(values))


def candidate_record(name: str, code: str = "", fitness: float = 0.8) -> CandidateRecord:
    return CandidateRecord(1, 1, 1, "replay", "", name, code, "h", "ok", "done", None, None, fitness, 0.0, {}, 1.0,
                           0, 0, 0.0, (), None, 0.0, None)


def test_the_verdict_names_the_fitness_the_unit_of_evidence_and_the_price_paid_on_the_other_numbers(capsys):
    """A candidate that wins on the judge on all 8 settings while its KL is far higher: the verdict says both, and
    counts settings, not setting × seed pairs; a setting where the candidate failed is lost and named."""
    task = load_task("preference-synthetic")
    rows = []
    for setting in range(8):
        for seed in range(2):
            label = {"beta": 0.01 * (setting + 1), "world_seed": 0, "label_noise": 0.2, "fitness": "judge",
                     "seed": seed, "budget": 1.0}
            rows.append(record("p", label, 0.80 + 0.01 * setting + 0.002 * seed, gold_reward=0.9,
                               naturalness=0.88 + (0.001 if setting % 2 else -0.001), kl=12.0 + seed))
            rows.append(record("dpo", label, 0.75 + 0.01 * setting, gold_reward=0.8, naturalness=0.88, kl=3.0 + seed))
    verdict = compare(task, PointIndex(rows), candidate_record("p"), "dpo", "judge score", str)
    assert (verdict.settings, verdict.seeds, verdict.failures, verdict.deterministic) == (8, 2, 0, False)
    assert verdict.verdict.startswith("better than dpo on judge score on 8 of 8 held-out settings (2 seeds each), "
                                      "mean +0.051 [")
    assert verdict.verdict.endswith("], exact sign-flip over settings p = 0.0078")  # 2 of 2**8 sign patterns
    words = {c.label: c.word for c in verdict.columns}
    assert words == {"gold reward": "higher", "naturalness": "no significant difference", "KL": "higher"}
    assert verdict.rows[0].candidate == pytest.approx({"fitness": 0.801, "gold_reward": 0.9, "naturalness": 0.879,
                                                       "kl": 12.5})
    # A trade-off task: the headline places it against dpo's frontier. dpo was measured only up to KL 4 here, and the
    # candidate spends 12-13: past the dearest point of dpo's frontier nothing is known (dpo trained longer might
    # reach more), so no setting is placed and nothing is claimed. The terminal shows the headline, then the
    # single-point line.
    assert verdict.headline == verdict.frontier[0].text and verdict.frontier[0].word == "not enough data"
    assert "8 settings could not be placed" in verdict.headline and "above" not in verdict.headline
    print_verdicts([verdict])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"p: {verdict.headline}" in shown and f"single point: {verdict.verdict}" in shown
    # One seed failed on the last setting: that setting is lost, and a candidate that failed is never "better".
    rows[-2] = record("p", rows[-2].setting, None)
    failed = compare(task, PointIndex(rows), candidate_record("p"), "dpo", "judge score", str)
    assert failed.failures == 1 and failed.settings == 7 and failed.rows[7].candidate["fitness"] == "failed"
    assert failed.word == "no significant difference" and "failed on 1 held-out setting" in failed.verdict


def heldout_of(tmp_path, candidates: dict[str, str], seeds: int = 3, **settings) -> dict:
    """``run_heldout`` on the outside task ``Levels`` through the real executor and sandbox: name -> verdict."""
    task = load_task(LEVELS)
    base = task.settings_from_dict(settings)
    info = RunInfo(run_id="verdict-test", task=LEVELS, proposer="replay", model="", config={}, seeds={},
                   versions={}, started_at=time.time(), finished_at=None, status="finished")
    with Archive.create(tmp_path / "run", info, TaskCard.of(task, base).to_dict()) as archive:
        reference = archive.add_candidate(generation=0, proposer="catalog", thought="", name="flat",
                                          code=task.baselines["flat"].code)
        archive.finish_candidate(reference.id, status="baseline", stage="done", error=None, fitness=0.0,
                                 fitness_std=0.0, metrics={}, seconds=1.0, feedback=None)
        records = []
        for name, code in candidates.items():
            made = archive.add_candidate(generation=1, proposer="replay", thought="", name=name, code=code)
            archive.finish_candidate(made.id, status="ok", stage="done", error=None, fitness=0.01, fitness_std=0.0,
                                     metrics={}, seconds=1.0, feedback="")
            records.append(next(c for c in archive.candidates() if c.name == name))
        reference = next(c for c in archive.candidates() if c.name == "flat")
        with make_executor("local", task_spec=LEVELS, task=task, workers=2, timeout_s=60) as executor:
            verdicts = run_heldout(task, archive, executor, records, reference, base, seeds)
    return {v.name: v for v in verdicts}


def test_a_deterministic_task_better_on_two_settings_of_six_is_not_called_better(tmp_path):
    """Every seed gives the same numbers: 3 seeds of 2 winning settings are 2 pieces of evidence, not 6, and 2 of 6
    settings are no evidence at all that the candidate is better off its setting (the old pairs gave p = 0.031)."""
    verdicts = heldout_of(tmp_path, {
        "two_of_six": "def two_of_six(level):\n    return torch.clamp(level - 3.5, 0.0, 0.01)\n",
        "everywhere": "def everywhere(level):\n    return level * 0.0 + 0.01\n"})
    two = verdicts["two_of_six"]
    assert two.deterministic and two.settings == 6 and two.evidence.wins == 2 and two.evidence.losses == 0
    assert two.word == "no significant difference" and two.evidence.p_value == pytest.approx(0.5)
    assert "on 2 of 6 held-out settings (deterministic: every seed gave the same values, so seeds are not " \
           "counted)" in two.verdict
    everywhere = verdicts["everywhere"]
    assert everywhere.word == "better" and everywhere.evidence.p_value == pytest.approx(2 / 64)
    assert everywhere.verdict == ("better than flat on the value on 6 of 6 held-out settings (deterministic: every "
                                  "seed gave the same values, so seeds are not counted), mean +0.010 [+0.010, "
                                  "+0.010], exact sign-flip over settings p = 0.031")


def test_better_on_every_setting_by_more_than_the_noise_is_called_better_and_five_settings_cannot_tell(tmp_path):
    verdicts = heldout_of(tmp_path, {
        "everywhere": "def everywhere(level):\n    return level * 0.0 + 0.01\n",
        "lower": "def lower(level):\n    return level * 0.0 - 0.01\n"}, seeds=3, noise=0.002)
    better = verdicts["everywhere"]
    assert not better.deterministic and better.seeds == 3 and better.word == "better"
    assert better.evidence.ci_low > 0.005 and better.verdict.startswith(
        "better than flat on the value on 6 of 6 held-out settings (3 seeds each), mean +0.010 [")
    assert verdicts["lower"].word == "worse"
    # Held out at level 5, the discovery's setting leaves five others: no sign-flip over five can reach p < 0.05.
    five = heldout_of(tmp_path / "five", {"everywhere": "def everywhere(level):\n    return level * 0.0 + 0.01\n"},
                      seeds=2, level=5, noise=0.002)["everywhere"]
    assert five.settings == 5 and five.word == "cannot tell"
    assert five.verdict.startswith("cannot tell against flat on the value: only 5 held-out settings, and an exact "
                                   "sign-flip over settings needs at least 6 to reach p < 0.05")


# Ignores the labels: it pushes every logit of every class down alike, so it learns nothing about the digits.
IGNORES_LABELS = "def ignores_labels(logits, targets):\n    return logits.mean(dim=1) * 0.0 + logits.sum(dim=1) ** 2\n"


def make_run(run_dir, candidates: dict[str, str]) -> None:
    task = load_task("classification")
    # a sixth of the default's epochs: cross-entropy still learns the digits, a loss that ignores the labels does not
    settings = task.settings_from_dict({"epochs": 10})
    config = DiscoveryConfig(task="classification", seeds=1, task_settings={"label_noise": settings.label_noise,
                                                                            "epochs": settings.epochs})
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


def test_heldout_reports_verdicts_over_settings_and_stores_points(tmp_path):
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
        assert v["settings"] == pairs >= 6 and v["seeds"] == 2 and v["reference"] == "cross_entropy"
        assert v["evidence"]["ci_low"] <= v["evidence"]["mean_diff"] <= v["evidence"]["ci_high"]
    bad = verdicts["ignores_labels"]
    assert bad["evidence"]["wins"] == 0 and bad["word"] == "worse"
    assert bad["verdict"].startswith(f"worse than cross_entropy on test accuracy: higher on 0 of {pairs} held-out "
                                     "settings (2 seeds each), mean -")
    assert bad["evidence"]["mean_diff"] < 0 and bad["evidence"]["p_value"] < 0.05 and bad["headline"] == bad["verdict"]
    with Archive.open(run_dir, readonly=True) as archive:
        points = archive.evaluations(suite="heldout")
    assert len(points) == 3 * 2 * pairs
    assert {p.candidate_name for p in points} == {"cross_entropy", "gce_candidate", "ignores_labels"}
    assert len({p.setting["label_noise"] for p in points}) >= 3 and len({p.setting["data_seed"] for p in points}) >= 2
    assert all(p.sandbox for p in points if p.status == "ok")
    shown = " ".join(result.stdout.split())
    assert "sign-flip over settings" in shown and "ignores_labels" in shown and "per held-out setting" in shown
