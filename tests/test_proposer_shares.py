"""Each proposer's share and what it earned: in the report, the leaderboard and its JSON, from a real archive."""

from __future__ import annotations

import json
import re

from llm2.archive import Archive
from llm2.discovery.bandit import ProposerBandit
from llm2.discovery.config import DiscoveryConfig
from llm2.report.build import build_report
from llm2.report.proposer_shares import proposer_shares, shares_html
from test_bandit import EXAMPLE_TASK, good_and_bad_arms
from test_discovery import run_discovery
from testkit import invoke_llm2, make_run

ROW = re.compile(r'<tr data-proposer="([^"]*)">(.*?)</tr>')
CELL = re.compile(r"<td[^>]*>(.*?)</td>")


def table_rows(page: str) -> dict[str, list[str]]:
    section = page.split('<section id="proposers">', 1)[1].split("</section>", 1)[0]
    return {label: [re.sub(r"<[^>]+>", "", cell) for cell in CELL.findall(body)] for label, body in ROW.findall(section)}


def test_the_report_shows_each_proposer_s_share_and_what_it_earned(tmp_path):
    arms = good_and_bad_arms(tmp_path, 6)
    config = DiscoveryConfig(task=EXAMPLE_TASK, proposer="replay", generations=6, population=1, seeds=1,
                             more_proposers=("replay:bad",))
    archive, summary = run_discovery(tmp_path, config, ProposerBandit(arms))
    assert summary.status == "finished"
    proposals = [c for c in archive.candidates() if c.generation > 0]
    counts = {label: sum(c.proposer == label for c in proposals) for label in arms}
    archive.close()

    rows = table_rows(build_report(tmp_path / "run").read_text(encoding="utf-8"))
    assert list(rows) == ["replay:good", "replay:bad"]  # in the order each first proposed
    # proposer, proposals, share, scored, best, improvement, cost, improvement per cost, temperature
    for label, cells in rows.items():
        assert cells[0] == label and int(cells[1]) == counts[label]
        assert cells[2] == f"{counts[label] / len(proposals):.0%}"
        assert cells[6].endswith(" core-s") and cells[8] == "0.8"  # unpriced: evaluation core-seconds
    assert rows["replay:good"][7].endswith("per core-s")
    # the target-blind losses barely beat the squared reference; the robust ones beat it by far
    assert float(rows["replay:good"][5]) > 10 * float(rows["replay:bad"][5]) / counts["replay:bad"]
    assert float(rows["replay:good"][7].split()[0]) > float(rows["replay:bad"][7].split()[0])
    assert counts["replay:good"] > counts["replay:bad"]

    board = invoke_llm2("leaderboard", str(tmp_path / "run"))
    lines = [line for line in board.output.splitlines() if line.startswith("Proposer ")]
    assert [line.split(":")[0] + ":" + line.split(":")[1] for line in lines] == ["Proposer replay:good",
                                                                                  "Proposer replay:bad"]
    assert f"{counts['replay:good']} proposals ({counts['replay:good'] / len(proposals):.0%})" in lines[0]
    shares = json.loads(invoke_llm2("leaderboard", str(tmp_path / "run"), "--json").output)["proposers"]
    assert [(s["label"], s["proposals"]) for s in shares] == [(label, counts[label]) for label in arms]


def test_a_priced_proposer_is_measured_per_dollar_and_labels_are_escaped(tmp_path):
    with Archive.create(tmp_path, make_run()) as archive:
        archive.add_candidate(generation=0, proposer="baseline", thought="", name="ref", code="", status="baseline")
        for name, proposer, fitness, cost in (("a", "openai:<b>m1</b>", 0.7, 0.5), ("b", "openai:<b>m1</b>", 0.4, 0.5),
                                              ("c", "hf:local", 0.6, 0.0)):
            candidate = archive.add_candidate(generation=1, proposer=proposer, thought="", name=name, code="",
                                              cost_usd=cost)
            archive.finish_candidate(candidate.id, status="ok", stage="done", error=None, fitness=fitness,
                                     fitness_std=0.0, metrics={}, seconds=4.0, feedback="")
        rows = proposer_shares(archive.candidates(), reference=0.5)
    priced, local = rows
    assert (priced.proposals, priced.scored, round(priced.improvement, 6), priced.cost_usd) == (2, 2, 0.2, 1.0)
    assert priced.per_cost_text == "0.2 per USD" and priced.best == 0.7
    assert (local.cost_text, local.per_cost_text) == ("4.0 core-s", "0.025 per core-s")
    page = shares_html(rows, "ref", "score")
    assert "<b>m1" not in page and "&lt;b&gt;m1&lt;/b&gt;" in page
