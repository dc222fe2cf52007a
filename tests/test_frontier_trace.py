"""dpo's frontier traced over several processes gives exactly the numbers of the trace in one process."""

from __future__ import annotations

import pytest
import torch

from llm2.tasks.preference_synthetic.config import PreferenceSettings, TrainConfig, WorldConfig
from llm2.tasks.preference_synthetic.reference_frontier import trace_frontier
from llm2.tasks.preference_synthetic.score import judge_tolerance
from llm2.tasks.preference_synthetic.world import load_world

TINY = WorldConfig(reference_sequences=256, reference_epochs=1, pairs=64, heldout_prompts=16)
# two seeds and two betas: the runs of one seed are put back in order among those of the other
CONFIG = TrainConfig(quick_prompts=8, frontier_seeds=2, frontier_betas=(1.0, 4.0), frontier_budgets=(0.5, 1.0))


@pytest.mark.slow  # two worker processes start (seconds each: torch, then its optimiser imports)
def test_the_trace_over_two_processes_is_the_trace_in_one():
    world = load_world(TINY, 0)
    settings = PreferenceSettings()
    tolerance = judge_tolerance(world, CONFIG)
    serial = trace_frontier(world, settings, CONFIG, tolerance, workers=1)
    spread = trace_frontier(world, settings, CONFIG, tolerance, workers=2)
    assert serial["full"].shape == (2, 1 + 2 * 2, 2)  # the start, then two budgets at each of two betas
    for half in ("full", "quick"):
        assert torch.equal(serial[half], spread[half])
    assert len(set(serial["full"][:, 1:, 0].flatten().tolist())) == 8  # points that differ: the order is checked


SCRIPT = '''
from llm2.tasks.preference_synthetic.config import PreferenceSettings, TrainConfig, WorldConfig
from llm2.tasks.preference_synthetic.reference_frontier import trace_frontier
from llm2.tasks.preference_synthetic.score import judge_tolerance
from llm2.tasks.preference_synthetic.world import load_world
print("the script's body runs", flush=True)
world = load_world(WorldConfig(reference_sequences=256, reference_epochs=1, pairs=64, heldout_prompts=16), 0)
config = TrainConfig(quick_prompts=8, frontier_seeds=1, frontier_betas=(1.0, 4.0), frontier_budgets=(1.0,))
print(tuple(trace_frontier(world, PreferenceSettings(), config, judge_tolerance(world, config), workers=2)["full"].shape))
'''


@pytest.mark.slow  # two worker processes start
def test_a_users_script_without_a_main_guard_runs_once(tmp_path):
    """The trace's workers do not import the caller's main module again (multiprocessing's spawn would)."""
    import subprocess
    import sys

    (tmp_path / "mine.py").write_text(SCRIPT)
    done = subprocess.run([sys.executable, "mine.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["the script's body runs", "(1, 3, 2)"]
