"""Where the catalog's losses sit against dpo's frontier on preference-synthetic, through the command line as a user
runs it: a one-generation replay discovery whose proposals are catalog losses (renamed), then ``llm2 heldout`` on
them, which traces dpo's frontier on every held-out setting and places each one.

    python bench/catalog_frontier.py [--losses hinge,ipo,kto_pair,discopop] [--seeds 1] [--workers 1]
                                     [--out bench-results/catalog_frontier]

Prints the verdicts and leaves the run (archive, ``heldout.json``, ``heldout.txt``) in --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from llm2.tasks.preference.catalog import OBJECTIVES

LLM2 = [sys.executable, "-m", "llm2.cli"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--losses", default="hinge,ipo,kto_pair,discopop")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench-results/catalog_frontier"))
    args = parser.parse_args()
    losses = [name.strip() for name in args.losses.split(",") if name.strip()]
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    replies = args.out / "replies.jsonl"
    # Renamed, so that they are proposals of the run (the discovery measures dpo, hinge, ipo and kto_pair as
    # baselines under their own names).
    replies.write_text("".join(json.dumps({"thought": f"the catalog's {name}", "name": f"catalog_{name}",
                                           "code": OBJECTIVES[name].code.replace(f"def {name}(", f"def catalog_{name}(")})
                               + "\n" for name in losses), encoding="utf-8")
    run_dir = args.out / "run"
    start = time.perf_counter()
    subprocess.run([*LLM2, "discover", "--proposer", "replay", "--replay", str(replies), "--generations", "1",
                    "--population", str(len(losses)), "--seeds", "1", "--workers", str(args.workers),
                    "--run-dir", str(run_dir)], check=True)
    discovered = time.perf_counter()
    result = subprocess.run([*LLM2, "heldout", str(run_dir), "--top", str(len(losses)), "--seeds", str(args.seeds),
                             "--workers", str(args.workers), "--timeout", "300", "--json",
                             str(args.out / "heldout.json")], check=True, capture_output=True, text=True)
    (args.out / "heldout.txt").write_text(result.stdout, encoding="utf-8")
    print(result.stdout)
    print(f"discover {discovered - start:.0f} s, heldout {time.perf_counter() - discovered:.0f} s "
          f"({args.workers} worker(s))")


if __name__ == "__main__":
    main()
