"""Where a self-develop run keeps its own state, beside the archive: ``DIR/selfdev/``.

    plan.json                     the plan (written once)
    prompt.json                   the prompt every sample was asked with (written once, after the baselines)
    iteration-K/factory/          the factory that wrote iteration K's samples (K > 0: trained on K-1's pairs),
                                  with factory.json and, when trained here, training.json (TRL's log)
    iteration-K/adapter/          the LoRA adapter trained on K-1's pairs (LoRA factories only)
    iteration-K/samples.jsonl     each sample: slot, candidate, raw completion, status, fitness
    iteration-K/pairs.jsonl       (prompt, chosen, rejected) built from iteration K's own results
    iteration-K/stats.json        the iteration's statistics; written last: its presence means iteration K is done

Every file appears atomically (``llm2.files``: written beside, then renamed), so a run killed at any moment leaves
each one either whole or absent; a factory directory is built under a temporary name and renamed when complete.
Its own module below both the writer (``llm2.selfdev``) and the reader (``llm2.report``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SELFDEV_DIRNAME = "selfdev"


@dataclass(frozen=True)
class RunFiles:
    run_dir: Path

    @property
    def root(self) -> Path:
        return self.run_dir / SELFDEV_DIRNAME

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def prompt(self) -> Path:
        return self.root / "prompt.json"

    def iteration(self, k: int) -> Path:
        return self.root / f"iteration-{k}"

    def factory(self, k: int) -> Path:
        return self.iteration(k) / "factory"

    def adapter(self, k: int) -> Path:
        return self.iteration(k) / "adapter"

    def samples(self, k: int) -> Path:
        return self.iteration(k) / "samples.jsonl"

    def pairs(self, k: int) -> Path:
        return self.iteration(k) / "pairs.jsonl"

    def stats(self, k: int) -> Path:
        return self.iteration(k) / "stats.json"

    def iterations_done(self) -> list[int]:
        done, k = [], 0
        while self.stats(k).is_file():
            done.append(k)
            k += 1
        return done
