"""Each proposer's share of a run and what it earned, read from the archive (for the report and the terminal).

A proposer is known by the label its candidates record (``--proposer`` given several times names each one; a run
with one proposer has one row). Per proposer: the proposals it wrote, their share, the improvement they earned (each
finished proposal's fitness above the reference baseline, 0 when below, invalid or a duplicate: the bandit's own
measure, ``discovery.bandit.gain``), what they cost — dollars where its replies were priced, else the evaluation
core-seconds they took (each evaluation runs on one single-threaded worker) — and the improvement per dollar, or per
core-second, in all. The temperatures its requests were sent at are shown beside (``--temperature-schedule``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Sequence

from llm2.archive import CandidateRecord
from llm2.archive.records import RequestRecord
from llm2.discovery.bandit import gain


@dataclass(frozen=True)
class ProposerShare:
    label: str
    proposals: int
    share: float  # of all the run's proposals, 0..1
    scored: int  # of its proposals, how many were evaluated and scored
    improvement: float  # summed over its finished proposals
    best: float | None  # its best fitness
    cost_usd: float
    core_seconds: float
    temperatures: tuple[float, ...]  # the distinct temperatures its requests were sent at, ascending

    @property
    def priced(self) -> bool:
        return self.cost_usd > 0

    @property
    def per_cost(self) -> float | None:
        """Improvement per dollar where priced, else per evaluation core-second; None with nothing spent."""
        cost = self.cost_usd if self.priced else self.core_seconds
        return self.improvement / cost if cost > 0 else None

    @property
    def cost_text(self) -> str:
        return f"{self.cost_usd:.4f} USD" if self.priced else f"{self.core_seconds:.1f} core-s"

    @property
    def per_cost_text(self) -> str:
        per = self.per_cost
        return "—" if per is None else f"{per:.4g} per {'USD' if self.priced else 'core-s'}"

    @property
    def temperature_text(self) -> str:
        if not self.temperatures:
            return "—"
        low, high = self.temperatures[0], self.temperatures[-1]
        return f"{low:g}" if low == high else f"{low:g}–{high:g}"


def proposer_shares(candidates: Sequence[CandidateRecord], reference: float | None,
                    requests: Sequence[RequestRecord] = ()) -> list[ProposerShare]:
    """One row per proposer, in the order each first proposed."""
    proposals = [c for c in candidates if c.generation > 0 and not c.is_baseline]
    labels = list(dict.fromkeys(c.proposer for c in proposals))
    temperatures: dict[str, set[float]] = {label: set() for label in labels}
    for r in requests:
        label, temperature = r.request.get("proposer"), r.request.get("temperature")
        if label in temperatures and isinstance(temperature, (int, float)):
            temperatures[label].add(float(temperature))
    rows = []
    for label in labels:
        own = [c for c in proposals if c.proposer == label]
        finished = [c for c in own if c.status not in ("pending", "duplicate")]
        scored = [c.fitness for c in finished if c.status == "ok" and c.fitness is not None]
        rows.append(ProposerShare(
            label=label, proposals=len(own), share=len(own) / len(proposals), scored=len(scored),
            improvement=sum(gain(c, reference) for c in finished), best=max(scored) if scored else None,
            cost_usd=sum(c.cost_usd for c in own), core_seconds=sum(c.seconds or 0.0 for c in own),
            temperatures=tuple(sorted(temperatures[label]))))
    return rows


def share_line(row: ProposerShare) -> str:
    """One terminal line for a proposer."""
    return (f"Proposer {row.label}: {row.proposals} proposals ({row.share:.0%}), {row.scored} scored, improvement "
            f"{row.improvement:.4g} for {row.cost_text} ({row.per_cost_text}), temperature {row.temperature_text}")


def shares_html(rows: Sequence[ProposerShare], reference_name: str | None, fitness_name: str) -> str:
    """The report's section: a table of the rows, with what each column means."""
    if not rows:
        return "<p>No proposal yet.</p>"
    head = ("<tr><th>proposer</th><th class=\"number\">proposals</th><th class=\"number\">share</th>"
            "<th class=\"number\">scored</th><th class=\"number\">best</th><th class=\"number\">improvement</th>"
            "<th class=\"number\">cost</th><th class=\"number\">improvement per cost</th><th>temperature</th></tr>")
    body = "".join(
        f"<tr data-proposer=\"{_esc(r.label)}\"><td><code>{_esc(r.label)}</code></td>"
        f"<td class=\"number\">{r.proposals}</td><td class=\"number\">{r.share:.0%}</td>"
        f"<td class=\"number\">{r.scored}</td><td class=\"number\">{'—' if r.best is None else f'{r.best:.4f}'}</td>"
        f"<td class=\"number\">{r.improvement:.4f}</td><td class=\"number\">{_esc(r.cost_text)}</td>"
        f"<td class=\"number\">{_esc(r.per_cost_text)}</td><td>{_esc(r.temperature_text)}</td></tr>"
        for r in rows)
    caption = (f"<p>Which proposer wrote the proposals and what they earned. Improvement: the sum over its finished "
               f"proposals of the fitness ({_esc(fitness_name)}) above {_esc(reference_name or 'zero')}, 0 when "
               "below, invalid or a duplicate — what the bandit rewards with several proposers. Cost: dollars where "
               "its replies were priced, else the evaluation core-seconds its proposals took. Temperature: the "
               "range its requests were sent at.</p>")
    return f"{caption}<table class=\"proposers\">{head}{body}</table>"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)
