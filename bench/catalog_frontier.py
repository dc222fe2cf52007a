"""Where the catalog's losses sit against dpo's frontier on preference-synthetic: a one-generation replay discovery
(which measures dpo, hinge, ipo and kto_pair as its baselines, plus the catalog losses given as proposals), then the
held-out check of ``llm2 heldout`` on all of them through the real executor and sandbox: dpo's frontier traced on
every held-out setting, each loss placed on, above or below it.

    python bench/catalog_frontier.py [--losses discopop] [--check aql,cell] [--seeds 1] [--workers 1]
                                     [--out bench-results/catalog_frontier]

The baselines are passed to the held-out check directly (``llm2 heldout`` takes a run's best proposals, and a
proposal that behaves like a baseline is recorded as its duplicate). A run already in --out is reused, and with it
the frontier points its archive holds; ``--check`` names the losses to check (default: every one in the run), and
one the run does not hold is added to it unevaluated (status pending: it has no fitness at the discovery's
setting), so that more losses are placed on the frontier already measured. Prints the verdicts; writes
``heldout.json`` to --out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from llm2.tasks.preference.catalog import OBJECTIVES

LLM2 = [sys.executable, "-m", "llm2.cli"]
BASELINES = ("hinge", "ipo", "kto_pair")  # measured by every preference-synthetic discovery


def discover(out: Path, losses: list[str], workers: int) -> Path:
    run_dir = out / "run"
    if (run_dir / "archive.sqlite").exists():
        return run_dir
    out.mkdir(parents=True, exist_ok=True)
    replies = out / "replies.jsonl"
    replies.write_text("".join(json.dumps({"thought": f"the catalog's {name}", "name": name,
                                           "code": OBJECTIVES[name].code}) + "\n" for name in losses),
                       encoding="utf-8")
    subprocess.run([*LLM2, "discover", "--proposer", "replay", "--replay", str(replies), "--generations", "1",
                    "--population", str(len(losses)), "--seeds", "1", "--workers", str(workers),
                    "--run-dir", str(run_dir)], check=True)
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--losses", default="discopop")
    parser.add_argument("--check", default="", help="losses to check (default: all in the run)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench-results/catalog_frontier"))
    args = parser.parse_args()
    from llm2.archive import Archive
    from llm2.commands.common import run_task
    from llm2.commands.heldout import print_verdicts
    from llm2.execution import make_executor
    from llm2.heldout import run_heldout

    start = time.perf_counter()
    run_dir = discover(args.out, [n.strip() for n in args.losses.split(",") if n.strip()], args.workers)
    discovered = time.perf_counter()
    with Archive.open(run_dir, readonly=False) as archive:
        task, settings, _ = run_task(archive)
        check = [n.strip() for n in args.check.split(",") if n.strip()]
        held = {c.name for c in archive.candidates()}
        for name in check:
            if name not in held:
                archive.add_candidate(generation=2, proposer="catalog", thought=f"the catalog's {name}", name=name,
                                      code=OBJECTIVES[name].code)
        records = {c.name: c for c in archive.candidates() if c.status in ("ok", "baseline", "pending")}
        candidates = [records[n] for n in (check or records) if n != task.reference_baseline]
        with make_executor("local", task_spec=task.name, task=task, workers=args.workers,
                           timeout_s=300) as executor:
            verdicts = run_heldout(task, archive, executor, candidates, records[task.reference_baseline], settings,
                                   args.seeds)
    print_verdicts(verdicts)
    (args.out / "heldout.json").write_text(json.dumps([asdict(v) for v in verdicts], indent=2), encoding="utf-8")
    print(f"discover {discovered - start:.0f} s, heldout {time.perf_counter() - discovered:.0f} s "
          f"({args.workers} worker(s))")


if __name__ == "__main__":
    main()
