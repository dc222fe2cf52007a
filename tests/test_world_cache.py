"""The world cache: built once per (config, seed), deterministic, safe when two processes build it at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from llm2.tasks.preference_synthetic import world as world_module
from llm2.tasks.preference_synthetic.config import WorldConfig
from llm2.tasks.preference_synthetic.world import (build_world, load_training, load_world, prepare_training,
                                                   training_path, world_path)

# A world small enough to build in about a second.
TINY = WorldConfig(reference_sequences=256, reference_epochs=1, pairs=64, heldout_prompts=16)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM2_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(world_module, "_WORLDS", {})
    monkeypatch.setattr(world_module, "_TRAINING", {})
    return tmp_path


def same_world(first, second) -> bool:
    a, b = first.to_state(), second.to_state()
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)


def test_building_is_deterministic_and_seeds_differ():
    assert same_world(build_world(TINY, 3), build_world(TINY, 3))
    assert not torch.equal(build_world(TINY, 4).completions_a, build_world(TINY, 3).completions_a)


def test_world_is_saved_once_and_then_loaded_from_memory(cache):
    world = load_world(TINY, 0)
    assert world_path(TINY, 0).exists() and world_path(TINY, 0).parent == cache
    assert load_world(TINY, 0) is world
    world_module._WORLDS.clear()
    assert same_world(load_world(TINY, 0), world)
    assert world_path(TINY, 0).stat().st_mode & 0o077 == 0  # no other user (the candidate's) may read it


def test_training_file_is_written_from_the_world_and_read_alone(cache):
    with pytest.raises(FileNotFoundError, match="the task was not prepared"):
        load_training(TINY, 0, 0.2)
    prepare_training(TINY, 0, 0.2)
    world_module._WORLDS.clear()  # a worker's process: only the training file
    training = load_training(TINY, 0, 0.2)
    assert world_module._WORLDS == {}
    world = load_world(TINY, 0)
    assert torch.equal(training.pairs.chosen, world.pairs(0.2).chosen)
    assert training.pairs.disagreement == world.pairs(0.2).disagreement
    assert training_path(TINY, 0, 0.2).stat().st_mode & 0o077 == 0


def test_cache_key_follows_the_config():
    assert world_path(TINY, 0) != world_path(WorldConfig(), 0)
    assert world_path(TINY, 0) != world_path(TINY, 1)


def test_two_processes_building_at_once_both_get_the_same_complete_world(cache):
    script = textwrap.dedent(f"""
        import hashlib, torch
        from llm2.tasks.preference_synthetic.config import WorldConfig
        from llm2.tasks.preference_synthetic.world import load_world
        world = load_world(WorldConfig(**{TINY.__dict__!r}), 0)
        print(hashlib.sha256(world.completions_a.numpy().tobytes() + world.token_rewards.numpy().tobytes()).hexdigest())
    """)
    env = {"LLM2_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"}
    processes = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    assert outputs[0][0] == outputs[1][0]
    assert sorted(p.suffix for p in cache.iterdir() if p.name != "secret") == [".lock", ".pt"]  # nothing temporary
    # neither was given a secret: it was made once, atomically, though both needed it, and both built with it
    assert [p.name for p in (cache / "secret").iterdir()] == ["world-secret"]


def test_label_noise_sets_the_share_of_wrong_labels():
    world = build_world(TINY, 0)
    assert world.pairs(0.0).disagreement == 0.0
    with pytest.raises(ValueError, match="label_noise must be in"):
        world.pairs(0.7)
    pairs = world.pairs(0.2)
    # the chosen side is always one of the two sampled completions, with its own reference log-prob
    assert torch.equal(torch.sort(torch.stack([pairs.reference_chosen_logps, pairs.reference_rejected_logps]), 0)[0],
                       torch.sort(torch.stack([world.reference_logps_a, world.reference_logps_b]), 0)[0])
