"""The README's main job, measured: the default ``llm2 discover`` from a cold world cache.

    python bench/discovery.py                 # default run: candidates/hour, best vs dpo, wall time
    python bench/discovery.py --long 100      # then a ~100-candidate run and ``llm2 heldout`` on its best

Prints one ``key=value`` line per figure; the last line is the default run's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llm2.archive import Archive

LLM2 = [sys.executable, "-m", "llm2.cli"]


def timed_discover(run_dir: Path, env: dict, *options: str) -> float:
    start = time.perf_counter()
    subprocess.run([*LLM2, "discover", "--run-dir", str(run_dir), *options], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def summarise(run_dir: Path, seconds: float, label: str) -> None:
    with Archive.open(run_dir, readonly=True) as archive:
        candidates = archive.candidates()
        best = archive.best(1)
    proposals = [c for c in candidates if c.generation > 0]
    evaluated = [c for c in proposals if c.stage not in (None, "static", "reply") and c.status != "duplicate"]
    dpo = next(c for c in candidates if c.name == "dpo" and c.generation == 0)
    print(f"{label}_proposals={len(proposals)}")
    print(f"{label}_evaluated={len(evaluated)}")
    print(f"{label}_ok={sum(c.status == 'ok' for c in proposals)}")
    print(f"{label}_candidates_per_hour={len(evaluated) / seconds * 3600:.0f}")
    print(f"{label}_dpo_fitness={dpo.fitness:.4f}")
    if best:
        print(f"{label}_best={best[0].name} fitness={best[0].fitness:.4f} ± {best[0].fitness_std:.4f} "
              f"kl={best[0].kl:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--long", type=int, default=0, help="also run about this many candidates, then heldout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LLM2_CACHE_DIR": str(Path(tmp) / "cache")}  # cold: world building included
        default_seconds = timed_discover(Path(tmp) / "default", env)
        summarise(Path(tmp) / "default", default_seconds, "default")
        if args.long:
            generations = max(1, args.long // 4)
            long_seconds = timed_discover(Path(tmp) / "long", env, "--generations", str(generations), "--seed", "1")
            summarise(Path(tmp) / "long", long_seconds, "long")
            out = Path(tmp) / "heldout.json"
            subprocess.run([*LLM2, "heldout", str(Path(tmp) / "long"), "--top", "3", "--json", str(out)], env=env,
                           check=True)
            for verdict in json.loads(out.read_text()):
                test = verdict["test"] or {}
                print(f"heldout {verdict['name']}: win rate {verdict['win_rate']:.2f} "
                      f"[{verdict['win_low']:.2f}, {verdict['win_high']:.2f}] over {verdict['pairs']} pairs, "
                      f"mean diff {test.get('mean_diff', float('nan')):+.4f}, p={test.get('p_value', float('nan')):.3g}"
                      f", failed {verdict['failures']}: {verdict['verdict']}")
        print(f"default_wall_seconds={default_seconds:.0f}")


if __name__ == "__main__":
    main()
