"""The report page: one self-contained HTML file (styles inline, images as data URIs, no network at all).

Candidate text (names, thoughts, code, errors, feedback) is untrusted: everything goes through ``esc``. A
Content-Security-Policy allows only data: images and the page's own inline style and script (by hash), so even a
mistake here could not make the browser fetch anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import time
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Any, Sequence

from llm2.archive import CandidateRecord, RunEvent, RunInfo
from llm2.archive.ranking import SCORED, ranked
from llm2.numbers import decimal_text, fitness_header, spread_text
from llm2.report.clusters import Clusters, clusters_html
from llm2.report.failures import FailureStats
from llm2.report.figures import Figure, MissingFigure
from llm2.task_api.card import TaskCard

# Marks each image as loaded or not once the page has loaded: the headless-browser test and a curious reader can
# both see whether every figure rendered (body[data-images-broken]).
CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var broken = 0;
  for (var i = 0; i < document.images.length; i++) {
    var img = document.images[i];
    var ok = img.complete && img.naturalWidth > 0;
    img.setAttribute("data-loaded", ok ? "yes" : "no");
    if (!ok) { broken += 1; }
  }
  document.body.setAttribute("data-images-checked", String(document.images.length));
  document.body.setAttribute("data-images-broken", String(broken));
});
"""


@dataclass(frozen=True)
class PageContent:
    run: RunInfo
    run_dir: str
    card: TaskCard
    setting_text: str
    candidates: Sequence[CandidateRecord]
    events: Sequence[RunEvent]
    curve: Figure | None
    task_figures: Sequence[Figure | MissingFigure]
    failures: FailureStats
    failures_figure: Figure | None
    generated_at: float
    proposers_section: str = ""  # each proposer's share and what it earned (report/proposer_shares.py)
    clusters: Clusters | None = None  # behavioural near-duplicates (None: the run has no fingerprints to read)


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def read_asset(name: str) -> str:
    return resources.files("llm2.report").joinpath(name).read_text(encoding="utf-8")


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def when(timestamp: float | None) -> str:
    return "—" if timestamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"


def number(value: float | None, digits: int = 4) -> str:
    return decimal_text(value if value is not None and math.isfinite(value) else None, digits=digits)


def key_value_table(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def setting_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def run_section(content: PageContent) -> str:
    run = content.run
    proposals = [c for c in content.candidates if not c.is_baseline]
    end = run.finished_at if run.finished_at is not None else content.generated_at
    took = duration(end - run.started_at) + ("" if run.finished_at is not None else " so far")
    prompt_tokens = sum(c.prompt_tokens for c in proposals)
    completion_tokens = sum(c.completion_tokens for c in proposals)
    cost = sum(c.cost_usd for c in proposals)
    evaluated = [c for c in proposals if c.seconds is not None]
    summary = key_value_table([
        ("run", run.run_id), ("directory", content.run_dir), ("task", run.task),
        ("setting", content.setting_text or "—"), ("fitness", content.card.fitness_name),
        ("reference", content.card.reference_baseline or "—"), ("proposer", run.proposer),
        ("model", run.model or "—"), ("status", run.status), ("started", when(run.started_at)),
        ("finished", when(run.finished_at)), ("duration", took),
        ("candidates", f"{len(proposals)} proposed, "
                       f"{sum(c.status == 'ok' for c in proposals)} scored, "
                       f"{sum(c.status == 'pending' for c in proposals)} pending"),
        ("evaluation time", f"{sum(c.seconds for c in evaluated):.1f} s in total, "
                            f"{sum(c.seconds for c in evaluated) / len(evaluated):.1f} s per candidate"
         if evaluated else "—"),
        ("tokens", f"{prompt_tokens:,} prompt + {completion_tokens:,} completion"),
        ("cost", f"{cost:.4f} USD" if cost else "0 (offline or unpriced proposer)"),
        ("sandbox", sandbox_text(content.candidates, run.config.get("allow_missing") or ())),
    ])
    settings = key_value_table([(k, setting_text(v)) for k, v in sorted(run.config.items())])
    seeds = key_value_table([(k, setting_text(v)) for k, v in sorted(run.seeds.items())]) if run.seeds else "—"
    versions = key_value_table([(k, setting_text(v)) for k, v in sorted(run.versions.items())]) \
        if run.versions else "—"
    history = key_value_table([(f"{when(e.at)} {e.kind}", setting_text(e.detail)) for e in content.events]) \
        if content.events else "—"
    # The full settings are long and rarely read: folded, and open on a click.
    return (f"{summary}<details class=\"settings\"><summary>Settings, seeds, versions and history</summary>"
            f"<h3>Settings</h3>{settings}<h3>Seeds</h3>{seeds}<h3>Versions</h3>{versions}"
            f"<h3>History</h3>{history}</details>")


def sandbox_text(candidates: Sequence[CandidateRecord], allowed_missing: Sequence[str]) -> str:
    """Which confinement layers took in the evaluations, and any layer the user let go."""
    evaluated = [c for c in candidates if c.sandbox]
    if not evaluated:
        text = "no evaluation recorded its sandbox layers"
    else:
        always = set.intersection(*(set(c.sandbox) for c in evaluated))
        every = set.union(*(set(c.sandbox) for c in evaluated))
        text = f"{', '.join(sorted(always))} in all {len(evaluated)} evaluated candidates"
        if every - always:
            text += f"; {', '.join(sorted(every - always))} in some only"
    if allowed_missing:
        text += f" (the user allowed runs without: {', '.join(allowed_missing)})"
    return text


def leaderboard_order(candidates: Sequence[CandidateRecord]) -> list[CandidateRecord]:
    """Scored first by fitness (best first), then pending, duplicates and rejected, each in run order."""
    scored = ranked(candidates)
    rest_order = {"pending": 0, "duplicate": 1}
    scored_ids = {c.id for c in scored}
    rest = sorted((c for c in candidates if c.id not in scored_ids),
                  key=lambda c: (rest_order.get(c.status, 2), c.index))
    return scored + rest


def status_text(candidate: CandidateRecord) -> str:
    if candidate.status in ("ok", "baseline", "pending", "duplicate") or not candidate.stage:
        return candidate.status
    return f"{candidate.status} at {candidate.stage}"


def candidate_body(candidate: CandidateRecord, names_by_id: dict[int, str]) -> str:
    parts = []
    if candidate.thought:
        parts.append(f"<h4>Thought</h4><pre class=\"thought\">{esc(candidate.thought)}</pre>")
    parts.append(f"<h4>Code</h4><pre><code>{esc(candidate.code)}</code></pre>")
    if candidate.error:
        parts.append(f"<h4>Why it was rejected</h4><pre class=\"error\">{esc(candidate.error)}</pre>")
    if candidate.duplicate_of is not None:
        original = names_by_id.get(candidate.duplicate_of, f"candidate {candidate.duplicate_of}")
        parts.append(f"<p>Duplicate of <strong>{esc(original)}</strong>: the same normalised code.</p>")
    if candidate.feedback:
        parts.append(f"<h4>Feedback the proposer got</h4><pre class=\"feedback\">{esc(candidate.feedback)}</pre>")
    facts = [("proposer", candidate.proposer), ("index in run", candidate.index),
             ("code hash", candidate.code_hash[:16])]
    if candidate.metrics:
        facts += [(k, number(v) if isinstance(v, (int, float)) else setting_text(v))
                  for k, v in sorted(candidate.metrics.items())]
    if candidate.prompt_tokens or candidate.completion_tokens:
        facts.append(("tokens", f"{candidate.prompt_tokens} prompt + {candidate.completion_tokens} completion"))
    if candidate.reply_events:
        facts.append(("reply repairs", "; ".join(candidate.reply_events)))
    parts.append(key_value_table(facts))
    return "".join(parts)


def leaderboard_section(candidates: Sequence[CandidateRecord], card: TaskCard, seeds: int | None = None) -> str:
    if not candidates:
        return "<p>No candidate yet.</p>"
    names_by_id = {c.id: c.name for c in candidates}
    columns = card.metric_columns  # every number the terminal leaderboard shows, in the same order
    head = ("<div class=\"board-row board-head\"><span>#</span><span>name</span><span class=\"num\">"
            f"{esc(fitness_header(seeds))}</span>" + "".join(f"<span class=\"num\">{esc(c.label)}</span>" for c in columns)
            + "<span>status</span><span class=\"num\">gen.</span><span class=\"num\">seconds</span></div>")
    rows, rank = [], 0
    for candidate in leaderboard_order(candidates):
        scored = candidate.status in SCORED and candidate.fitness is not None
        rank += scored
        label = esc(f"{rank}" if scored else "—")
        fitness = spread_text(candidate.fitness, candidate.fitness_std, seeds) if candidate.fitness is not None else "—"
        seconds = "—" if candidate.seconds is None else f"{candidate.seconds:.1f}"
        generation = "base" if candidate.is_baseline else candidate.generation
        opened = " open" if not rows else ""  # the top row starts open, to show what a row holds
        rows.append(
            f"<details class=\"candidate\" data-candidate-id=\"{candidate.id}\" data-status=\"{esc(candidate.status)}\""
            f"{opened}>"
            f"<summary class=\"board-row\"><span>{label}</span><span class=\"name\">{esc(candidate.name)}</span>"
            f"<span class=\"num\">{esc(fitness)}</span>"
            + "".join(f"<span class=\"num\">{esc(number(candidate.value(c.key), c.digits))}</span>" for c in columns)
            + f"<span class=\"status-{esc(candidate.status)}\">{esc(status_text(candidate))}</span>"
            f"<span class=\"num\">{esc(generation)}</span><span class=\"num\">{esc(seconds)}</span></summary>"
            f"<div class=\"body\">{candidate_body(candidate, names_by_id)}</div></details>")
    caption = ("<p>Every candidate of the run, baselines included (measured in this run, generation “base”). "
               f"Click a row for its thought, code, every number and the feedback it got. Fitness: "
               f"{esc(card.fitness_name)}, mean over the training seeds. {esc(card.reference_baseline)} is the "
               "reference every candidate is compared with.</p>")
    return caption + f"<div class=\"board\">{head}{''.join(rows)}</div>"


def board_css(card: TaskCard) -> str:
    """The leaderboard grid's columns: one per task number (the CSP admits only the hashed stylesheet, so the
    column count goes into the stylesheet rather than a style attribute)."""
    numbers = " ".join("7rem" for _ in card.metric_columns)
    return (f"\n.board-row {{ grid-template-columns: 2.5rem minmax(10rem, 2fr) 11rem {numbers} 11rem 3.5rem 4.5rem; "
            "}\n")


def figure_html(figure: Figure | MissingFigure | None, missing: str = "") -> str:
    if figure is None:
        return f"<p class=\"note\">{esc(missing)}</p>"
    if isinstance(figure, MissingFigure):
        return f"<p class=\"note\">{esc(figure.note)}</p>"
    note = f"<p>{esc(figure.note)}</p>" if figure.note else ""
    return (f"<figure><img src=\"{figure.data_uri}\" alt=\"{esc(figure.title)}\">"
            f"<figcaption>{esc(figure.caption)} (also saved beside this page as "
            f"<a href=\"{esc(figure.file)}\">{esc(figure.file)}</a>)</figcaption></figure>{note}")


def task_sections(figures: Sequence[Figure | MissingFigure]) -> tuple[str, str]:
    """(navigation links, sections) for the task's own figures."""
    links, sections = [], []
    for number, figure in enumerate(figures, start=1):
        anchor = f"task-figure-{number}"
        links.append(f"<a href=\"#{anchor}\">{esc(figure.title)}</a>")
        sections.append(f"<section id=\"{anchor}\" class=\"task-figure\"><h2>{esc(figure.title)}</h2>"
                        f"{figure_html(figure)}</section>")
    return " ".join(links), "\n".join(sections)


def failures_section(stats: FailureStats, figure: Figure | None) -> str:
    if stats.total == 0:
        return "<p>No candidate yet.</p>"
    statuses = sorted({s for per_stage in stats.counts.values() for s in per_stage})
    head = "<tr><th>stage reached</th>" + "".join(f"<th class=\"number\">{esc(s)}</th>" for s in statuses) + \
        "<th class=\"number\">total</th></tr>"
    body = "".join(
        f"<tr><th>{esc(stage)}</th>" + "".join(f"<td class=\"number\">{per_stage.get(s, 0)}</td>" for s in statuses)
        + f"<td class=\"number\">{sum(per_stage.values())}</td></tr>"
        for stage, per_stage in stats.counts.items())
    parts = [f"<p>{stats.rejected} of {stats.total} proposals were rejected or failed.</p>",
             f"<table>{head}{body}</table>"]
    if figure is not None:
        parts.append(figure_html(figure, ""))
    if stats.reasons:
        rows = "".join(f"<tr><td class=\"number\">{r.count}</td><td><code>{esc(r.text)}</code></td>"
                       f"<td>{esc(', '.join(r.examples))}</td></tr>" for r in stats.reasons)
        parts.append("<h3>Most common reasons</h3><table><tr><th class=\"number\">count</th><th>reason (numbers "
                     f"shown as N)</th><th>for example</th></tr>{rows}</table>")
    return "".join(parts)


def render_page(content: PageContent) -> str:
    css = read_asset("style.css") + board_css(content.card)
    csp = ("default-src 'none'; img-src data:; "
           f"style-src {csp_hash(css)}; script-src {csp_hash(CHECK_SCRIPT)}; base-uri 'none'; form-action 'none'")
    running_note = "" if content.run.status != "running" else (
        "<p class=\"note\">The run is marked as running (still going, or stopped before it could record its end): "
        "this page shows its state when the page was generated. "
        f"Run <code>llm2 report {esc(content.run_dir)}</code> again for newer results.</p>")
    task_links, task_figure_sections = task_sections(content.task_figures)
    return Template(read_asset("page.html")).substitute(
        csp=csp, css=css, script=CHECK_SCRIPT, title=esc(f"{content.run.task} · {content.run.run_id}"),
        generated_at=esc(when(content.generated_at)), running_note=running_note,
        run_section=run_section(content),
        leaderboard_section=leaderboard_section(content.candidates, content.card, content.run.config.get("seeds")),
        curve_section=figure_html(content.curve, "No candidate yet."),
        proposers_section=content.proposers_section or "<p>No proposal yet.</p>",
        task_links=task_links, task_sections=task_figure_sections,
        failures_section=failures_section(content.failures, content.failures_figure),
        clusters_section=clusters_html(content.clusters, esc, number) if content.clusters else
        "<p class=\"note\">No behavioural fingerprints in this run.</p>",
    )
