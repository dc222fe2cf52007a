"""The README's main job, measured: the default ``llm2 discover`` from a cold world cache, then its leaderboard.

    python bench/discovery.py                     # default run: candidates/hour, best against dpo, wall time
    python bench/discovery.py --generations 1     # a shorter run (any other ``llm2 discover`` default kept)
    python bench/discovery.py --long 100          # then a ~100-candidate run and ``llm2 heldout`` on its best

The world is built inside the timed run (a fresh cache directory), as on a fresh machine. Prints one
``key=value`` line per figure (candidates per hour over the whole run, and over the span from the first candidate
to the last: without start-up and the world build), the run's ``llm2 leaderboard``, and last the default run's wall
time. The peer is the run's own reference baseline (dpo, measured in the same run): ``best_over_dpo`` is the best
proposal's fitness divided by dpo's.
"""

from __future__ import annotations

import argparse
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


def summarise(run_dir: Path, seconds: float, label: str, env: dict) -> None:
    with Archive.open(run_dir, readonly=True) as archive:
        candidates = archive.candidates()
        best = archive.best(1)
    proposals = [c for c in candidates if c.generation > 0]
    evaluated = [c for c in proposals if c.stage not in (None, "static", "reply") and c.status != "duplicate"]
    dpo = next(c for c in candidates if c.name == "dpo" and c.generation == 0)
    print(f"{label}_proposals={len(proposals)}")
    print(f"{label}_evaluated={len(evaluated)}")
    print(f"{label}_ok={sum(c.status == 'ok' for c in proposals)}")
    print(f"{label}_stopped_by_probe={sum(c.stage == 'probe' for c in proposals)}")
    print(f"{label}_candidates_per_hour={len(evaluated) / seconds * 3600:.0f}")
    # the same from the first candidate's creation to the last one's end: without start-up and the world build
    span = max(c.finished_at or c.created_at for c in candidates) - min(c.created_at for c in candidates)
    scored = [c for c in candidates if c.stage not in (None, "static", "reply") and c.status != "duplicate"]
    print(f"{label}_startup_s={seconds - span:.0f} {label}_evaluation_span_s={span:.0f} "
          f"{label}_candidates_per_hour_after_startup={len(scored) / span * 3600:.0f} (baselines included)")
    print(f"{label}_dpo_fitness={dpo.fitness:.4f} gold_reward={dpo.value('gold_reward'):.4f}")
    if best:
        top = best[0]
        print(f"{label}_best={top.name} fitness={top.fitness:.4f} ± {top.fitness_std or 0.0:.4f} "
              f"gold_reward={top.value('gold_reward') or float('nan'):.4f} kl={top.value('kl') or float('nan'):.2f}")
        print(f"{label}_best_over_dpo={top.fitness / dpo.fitness:.3f}")
    board = subprocess.run([*LLM2, "leaderboard", str(run_dir)], env={**env, "COLUMNS": "160"}, check=True,
                           capture_output=True, text=True)
    print(board.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=None, help="instead of llm2 discover's default")
    parser.add_argument("--long", type=int, default=0, help="also run about this many candidates, then heldout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LLM2_CACHE_DIR": str(Path(tmp) / "cache")}  # cold: world building included
        load_before = os.getloadavg()[0]
        options = () if args.generations is None else ("--generations", str(args.generations))
        default_seconds = timed_discover(Path(tmp) / "default", env, *options)
        print(f"cores={os.cpu_count()} load_1min_before={load_before:.2f} load_1min_after={os.getloadavg()[0]:.2f}")
        summarise(Path(tmp) / "default", default_seconds, "default", env)
        if args.long:
            generations = max(1, args.long // 4)
            long_seconds = timed_discover(Path(tmp) / "long", env, "--generations", str(generations), "--seed", "1")
            summarise(Path(tmp) / "long", long_seconds, "long", env)
            subprocess.run([*LLM2, "heldout", str(Path(tmp) / "long"), "--top", "3"], env=env, check=True)
        print(f"default_wall_seconds={default_seconds:.0f}")


if __name__ == "__main__":
    main()
