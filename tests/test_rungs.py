"""Multi-fidelity evaluation: every proposal starts on the task's lowest rung, only the best climb to the full
evaluation, and each decision is kept with its evidence."""

from __future__ import annotations

from test_discovery import run_discovery
from llm2.archive.ranking import ranked
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.rungs import Rung, ladder_of
from llm2.proposers import make_proposer


def test_successive_halving_promotes_the_best_and_records_why(tmp_path):
    config = DiscoveryConfig(generations=2, population=3, seeds=2, baselines=("dpo",), rungs=True)
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
    assert all(c.fitness is not None for c in ranked(candidates))
    event = next(e for e in archive.run_events() if e.kind == "rung_correlations")
    assert event.detail["correlations"][0]["n"] == len(promoted) + 1  # the promoted and the baseline
    assert summary.status == "finished"
    archive.close()
    from llm2.report.build import build_report

    assert "Fitness of every candidate" in build_report(tmp_path / "run").read_text(encoding="utf-8")


def test_the_ladder_is_the_task_rungs_then_the_full_evaluation():
    assert ladder_of(((0.5, 1), (0.25, 3), (1.0, 1)), seeds=2) == [Rung(0.25, 2), Rung(0.5, 1), Rung(1.0, 2)]
    assert ladder_of((), seeds=3) == [Rung(1.0, 3)]
