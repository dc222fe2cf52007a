"""The report's clusters of behavioural near-duplicates: a real run (real archive, fingerprints taken in the confined
child) in which a lightly label-smoothed dpo lands in dpo's cluster and a hinge does not."""

from __future__ import annotations

from fake_openai_server import FakeOpenAIServer, completion, good_reply_json
from test_discovery import run_discovery
from tiny_preference_task import TINY_TASK

from llm2.archive.records import CandidateRecord
from llm2.discovery.config import DiscoveryConfig
from llm2.proposers import make_proposer
from llm2.report.build import build_report
from llm2.report.clusters import behaviour_clusters

SIGNATURE = "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, " \
            "beta):\n    x = beta * ((policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - " \
            "reference_rejected_logps))\n"
SMOOTHED_DPO = SIGNATURE + "    return -0.98 * F.logsigmoid(x) - 0.02 * F.logsigmoid(-x)\n"  # 0.014 from dpo
HINGE = SIGNATURE + "    return torch.relu(1.0 - x)\n"  # 0.32 from dpo


def test_the_report_shows_near_duplicates_as_one_cluster(tmp_path):
    script = [completion(good_reply_json("smoothed_dpo", code=SMOOTHED_DPO)),
              completion(good_reply_json("plain_hinge", code=HINGE))]
    # on the small world: clusters are of behaviour on a fixed probe batch, whatever the world and fitness
    config = DiscoveryConfig(task=TINY_TASK, proposer="openai", generations=2, population=1, seeds=1,
                             baselines=("dpo",), proposer_options={"model": "fake-model"})
    with FakeOpenAIServer(script) as server:
        proposer = make_proposer("openai", model="fake-model", base_url=server.base_url, api_key_env="NO_SUCH_KEY")
        archive, _ = run_discovery(tmp_path, config, proposer)
    statuses = {c.name: c.status for c in archive.candidates()}
    archive.close()
    assert statuses["smoothed_dpo"] == "ok"  # near, not equal: evaluated, not merged
    page = build_report(tmp_path / "run").read_text(encoding="utf-8")
    section = page.split('<section id="clusters">')[1].split("</section>")[0]
    assert "1 cluster of two or more among 3 fingerprinted candidates" in section
    assert "smoothed_dpo" in section and "dpo (baseline)" in section
    assert "plain_hinge" not in section


def candidate(cid: int, fitness: float | None) -> CandidateRecord:
    return CandidateRecord(id=cid, generation=1, index=cid, proposer="p", thought="", name=f"c{cid}", code="",
                           code_hash="", status="ok", stage=None, error=None, duplicate_of=None, fitness=fitness,
                           fitness_std=None, metrics={}, seconds=1.0, prompt_tokens=0, completion_tokens=0,
                           cost_usd=0.0, reply_events=(), feedback=None, created_at=0.0, finished_at=None)


def test_leaders_are_the_best_and_members_join_the_first_leader_in_reach():
    candidates = [candidate(1, 0.5), candidate(2, 0.9), candidate(3, None), candidate(4, 0.7)]
    vectors = {1: (0.0, 0.05), 2: (0.0, 0.0), 3: (0.0, 0.09), 4: (1.0, 0.0)}
    clusters = behaviour_clusters(candidates, vectors, duplicates={3}, radius=0.1)
    [group] = clusters.groups
    assert [m.candidate.id for m in group] == [2, 1, 3]  # the best leads; candidate 4 is alone, so not shown
    assert group[2].duplicate and round(group[1].distance, 6) == 0.05
    assert clusters.fingerprinted == 4
