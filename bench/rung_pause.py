"""What training on from a rung's cut saves against retraining a promoted candidate from scratch.

    nice -n 10 python bench/rung_pause.py --seeds 0 1 --generations 4

Two arms of the default discovery with ``--rungs`` (the symbolic proposer, fingerprints on, at each search seed):
``retrain``, the same task declared unable to pause (every promoted candidate is trained again at the full
evaluation, as before), and ``pause``, the task as it is (a promoted candidate trains on from its rung's cut). Per
arm: the evaluation core-seconds of the run (the seconds each candidate's evaluations took, summed; beside them the
processor seconds, ``cpu_seconds``, which the machine's other load does not move), the trained
seconds the pause arm did not repeat (``rung_seconds_saved``), and the ratio pause / retrain of the core-seconds
per candidate that reached the full evaluation (the arms may propose differently after the first promotions:
their feedback arrives in another order). ``same_fitness``: for the code both arms evaluated in full, whether the
fitness per seed is identical (it must be).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from llm2.archive import Archive
from llm2.tasks.preference_synthetic.task import PreferenceSyntheticTask

sys.path.insert(0, str(Path(__file__).parent))
from search_efficiency import TASK, run_once  # noqa: E402 - the bench folder is not a package

RETRAINING = f"{Path(__file__).resolve()}:RetrainingPreference"


class RetrainingPreference(PreferenceSyntheticTask):
    """The peer: the same task, declared unable to pause, so a promoted candidate is trained again."""

    def can_pause(self, settings) -> bool:
        return False


def run_arm(root: Path, arm: str, seed: int, generations: int) -> Path:
    return run_once(root, arm, seed, generations, after=True, rungs=True,
                    task_spec=RETRAINING if arm == "retrain" else TASK)


def figures(run_dir: Path) -> dict:
    with Archive.open(run_dir, readonly=True) as archive:
        candidates = [c for c in archive.candidates() if (c.seconds or 0) > 0]
    full = [c for c in candidates if c.fitness is not None]
    return {"core_s": sum(c.seconds for c in candidates), "full": len(full),
            "full_s_each": statistics.mean(c.seconds for c in full) if full else float("nan"),
            "full_cpu_each": (statistics.mean(c.metrics.get("cpu_seconds") or 0.0 for c in full) if full
                              else float("nan")),
            "saved_s": sum(c.metrics.get("rung_seconds_saved") or 0.0 for c in candidates),
            "fitness": {c.code: c.metrics.get("fitness_per_seed") for c in full}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--generations", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="llm2-rung-pause-") as root:
        for seed in args.seeds:
            arms = {arm: figures(run_arm(Path(root), arm, seed, args.generations)) for arm in ("retrain", "pause")}
            shared = set(arms["retrain"]["fitness"]) & set(arms["pause"]["fitness"])
            same = all(arms["retrain"]["fitness"][code] == arms["pause"]["fitness"][code] for code in shared)
            print(f"seed={seed} " + " ".join(
                f"{arm}: core_s={f['core_s']:.1f} full={f['full']} full_s_each={f['full_s_each']:.2f} "
                f"full_cpu_each={f['full_cpu_each']:.2f} saved_s={f['saved_s']:.1f}" for arm, f in arms.items())
                + f" ratio_full_s_each={arms['pause']['full_s_each'] / arms['retrain']['full_s_each']:.3f}"
                + f" ratio_full_cpu_each={arms['pause']['full_cpu_each'] / arms['retrain']['full_cpu_each']:.3f}"
                + f" same_fitness={same} ({len(shared)} codes)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
