"""``llm2 heldout``: candidates against the task's reference on its held-out suite, with honest statistics."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from llm2.archive import Archive, RunInfo
from llm2.discovery.config import DiscoveryConfig
from llm2.tasks import load_task
from llm2.tasks.card import TaskCard
from llm2.tasks.preference.catalog import OBJECTIVES

# Pushes chosen and rejected up alike: it ignores the preference labels, so it cannot beat dpo anywhere.
IGNORES_PREFERENCES = (
    "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
    "    return -0.01 * (policy_chosen_logps + policy_rejected_logps)\n"
)


def make_run(run_dir, candidates: dict[str, str]) -> None:
    task = load_task("preference-synthetic")
    config = DiscoveryConfig(seeds=1, task_settings={"beta": 0.05, "world_seed": 0, "label_noise": 0.2})
    info = RunInfo(run_id="heldout-test", task=config.task, proposer="symbolic", model="", config=config.to_dict(),
                   seeds={}, versions={}, started_at=time.time(), finished_at=None, status="finished")
    with Archive.create(run_dir, info, TaskCard.of(task).to_dict()) as archive:
        dpo = archive.add_candidate(generation=0, proposer="catalog", thought="", name="dpo",
                                    code=OBJECTIVES["dpo"].code)
        archive.finish_candidate(dpo.id, status="baseline", stage="done", error=None, fitness=0.7, fitness_std=0.0,
                                 metrics={"kl": 1.0}, seconds=1.0, feedback=None)
        for rank, (name, code) in enumerate(candidates.items()):
            record = archive.add_candidate(generation=1, proposer="symbolic", thought="", name=name, code=code)
            archive.finish_candidate(record.id, status="ok", stage="done", error=None, fitness=0.9 - rank / 10,
                                     fitness_std=0.0, metrics={"kl": 1.0}, seconds=1.0, feedback="")


@pytest.mark.slow
def test_heldout_reports_win_rates_and_stores_points(tmp_path):
    run_dir = tmp_path / "run"
    make_run(run_dir, {"hinge_candidate": OBJECTIVES["hinge"].code, "ignores_preferences": IGNORES_PREFERENCES})
    out = tmp_path / "heldout.json"
    result = subprocess.run([sys.executable, "-m", "llm2.cli", "heldout", str(run_dir), "--top", "2", "--seeds", "1",
                             "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    verdicts = {v["name"]: v for v in json.loads(out.read_text())}
    assert set(verdicts) == {"hinge_candidate", "ignores_preferences"}
    for v in verdicts.values():
        assert v["pairs"] >= 6  # β, world seed and label-noise variants
        assert v["win_low"] <= v["win_rate"] <= v["win_high"]
    bad = verdicts["ignores_preferences"]
    assert bad["win_rate"] == 0.0 and bad["verdict"].startswith("worse than dpo on ")
    assert bad["test"]["mean_diff"] < 0 and bad["test"]["p_value"] < 0.05
    with Archive.open(run_dir, readonly=True) as archive:
        points = archive.evaluations(suite="heldout")
    assert len(points) == 3 * verdicts["hinge_candidate"]["pairs"]
    assert {p.candidate_name for p in points} == {"dpo", "hinge_candidate", "ignores_preferences"}
    assert len({p.setting["beta"] for p in points}) >= 3 and len({p.setting["world_seed"] for p in points}) >= 2
    assert all(p.value("kl") is not None and p.sandbox for p in points if p.status == "ok")
    assert "win rate" in result.stdout and "ignores_preferences" in result.stdout
    # the verdict says what the candidate pays on the other numbers, per setting too
    hinge = verdicts["hinge_candidate"]
    assert [c["label"] for c in hinge["columns"]] == ["KL"] and len(hinge["settings"]) >= 6
    assert all(set(row["candidate"]) == {"fitness", "kl"} for row in hinge["settings"])
