"""The world secret: made at first use (0600 in a 0700 directory), the same secret gives the same worlds, another
secret other hidden parts and other cache files, bad secret files are one clear error, and a run records only the
secret's fingerprint and cannot be resumed with another secret."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from llm2.cli import main
from llm2.discovery.config import DiscoveryConfig
from llm2.discovery.run import create_run
from llm2.tasks import load_task
from llm2.task_api import world_secret
from llm2.tasks.merging_synthetic.world import RECIPES, build_heldout, problems_file, seed_file
from llm2.tasks.preference_synthetic import world as world_module
from llm2.tasks.preference_synthetic.config import WorldConfig
from llm2.tasks.preference_synthetic.world import build_world, training_path, world_path

TINY = WorldConfig(reference_sequences=256, reference_epochs=1, pairs=64, heldout_prompts=16)


@pytest.fixture
def secrets_dir(tmp_path, monkeypatch):
    """A private cache and no secret chosen; whatever this test publishes is undone after it."""
    monkeypatch.setenv("LLM2_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(world_secret.SECRET_ENV)
    monkeypatch.setenv(world_secret.FINGERPRINT_ENV, "")  # recorded, so that what the test publishes is undone
    monkeypatch.delenv(world_secret.FINGERPRINT_ENV)
    monkeypatch.setattr(world_secret, "_loaded", None)
    monkeypatch.setattr(world_module, "_WORLDS", {})
    return tmp_path


def write_secret(path, text: str, mode: int = 0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def public_seed_rewards(config: WorldConfig, seed: int) -> torch.Tensor:
    """What a candidate could compute before: the gold reward's token weights drawn from the world seed alone, as
    the world was built until the secret (the same draws, in the same order)."""
    rng = np.random.default_rng([seed, 2024])
    rng.dirichlet(np.full(config.vocab_size, config.dirichlet_alpha), size=(config.topics, config.vocab_size))
    return torch.tensor(rng.standard_normal(config.vocab_size), dtype=torch.float32)


def test_the_secret_is_made_at_first_use_private_and_kept(secrets_dir):
    fingerprint = world_secret.use_file(None)
    path = world_secret.default_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    secret = path.read_bytes().strip()
    assert len(secret) == 64 and fingerprint == world_secret.fingerprint_of(secret)
    assert fingerprint.encode() not in secret and secret.decode() not in fingerprint
    assert os.environ[world_secret.FINGERPRINT_ENV] == fingerprint  # what workers name their files by
    world_secret._loaded = None  # another process: it reads the same secret, it does not make a new one
    assert world_secret.fingerprint() == fingerprint and path.read_bytes().strip() == secret


def test_same_secret_same_world_another_secret_another_hidden_world(secrets_dir):
    first = write_secret(secrets_dir / "first", "a" * 40)
    world_secret.use_file(first)
    world = build_world(TINY, 0)
    first_world_file, first_training_file = world_path(TINY, 0), training_path(TINY, 0, 0.2)
    assert torch.equal(build_world(TINY, 0).token_rewards, world.token_rewards)  # reproducible
    assert not torch.equal(world.token_rewards, public_seed_rewards(TINY, 0)), "rebuilt from the public seed"

    world_secret.use_file(write_secret(secrets_dir / "second", "b" * 40))
    other = build_world(TINY, 0)
    assert not torch.equal(other.token_rewards, world.token_rewards)
    assert not torch.equal(other.transitions, world.transitions)
    assert not torch.equal(other.heldout_prompts, world.heldout_prompts)
    assert other.sampling_seed != world.sampling_seed
    assert not torch.equal(other.pairs(0.2).chosen, world.pairs(0.2).chosen)
    # the caches are the secret's: the new secret can never reuse the old one's hidden data
    assert world_path(TINY, 0) != first_world_file and training_path(TINY, 0, 0.2) != first_training_file

    world_secret.use_file(first)  # back to the first secret: the same numbers again
    assert torch.equal(build_world(TINY, 0).token_rewards, world.token_rewards)
    assert world_path(TINY, 0) == first_world_file


def test_the_merging_heldout_draw_follows_the_secret(secrets_dir):
    world_secret.use_file(write_secret(secrets_dir / "first", "a" * 40))
    recipe = RECIPES["small"]
    drawn, first_file = build_heldout(0, recipe), problems_file(0, "small")
    assert torch.equal(build_heldout(0, recipe)["copy"]["tokens"], drawn["copy"]["tokens"])
    world_secret.use_file(write_secret(secrets_dir / "second", "b" * 40))
    assert not torch.equal(build_heldout(0, recipe)["copy"]["tokens"], drawn["copy"]["tokens"])
    assert problems_file(0, "small") != first_file
    assert seed_file(0, "small").parent == first_file.parent  # the models stay: they are the training side


@pytest.mark.parametrize(("text", "mode", "message"), [
    ("c" * 40, 0o644, "readable by other users"),
    ("short", 0o600, "too short"),
])
def test_an_unusable_secret_file_is_one_clear_error(secrets_dir, text, mode, message):
    path = write_secret(secrets_dir / "secret", text, mode)
    result = CliRunner().invoke(main, ["evaluate", "--world-secret", str(path), "--objective", "dpo"])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert not (secrets_dir / "cache").exists(), "nothing was built"


def test_a_missing_secret_file_is_not_made(secrets_dir):
    missing = secrets_dir / "nowhere" / "secret"
    result = CliRunner().invoke(main, ["evaluate", "--world-secret", str(missing), "--objective", "dpo"])
    assert result.exit_code == 2 and "cannot read the world secret" in result.output
    assert not missing.exists()


def test_a_worker_names_its_files_without_the_secret(secrets_dir):
    with pytest.raises(world_secret.NotPrepared, match="not prepared"):
        world_secret.published_fingerprint()
    world_secret.use_file(write_secret(secrets_dir / "first", "a" * 40))
    assert world_secret.published_fingerprint() == world_secret.fingerprint()


def test_a_run_records_the_fingerprint_and_is_not_resumed_with_another_secret(secrets_dir):
    task = load_task("preference-synthetic")
    first = write_secret(secrets_dir / "first", "a" * 40)
    run_dir = secrets_dir / "run"
    config = DiscoveryConfig(world_secret=world_secret.use_file(first))
    create_run(config, run_dir, task).close()
    recorded = json.dumps(DiscoveryConfig.from_dict(config.to_dict()).to_dict())
    assert config.world_secret in recorded and "a" * 40 not in recorded

    other = write_secret(secrets_dir / "second", "b" * 40)
    result = CliRunner().invoke(main, ["discover", "--world-secret", str(other), "--run-dir", str(run_dir),
                                       "--resume"])
    assert result.exit_code == 2 and "cannot resume" in result.output and config.world_secret in result.output
    assert "--world-secret" in result.output and "Traceback" not in result.output


def test_resuming_a_run_made_before_world_secrets_says_its_numbers_change(secrets_dir, capsys):
    from llm2.commands.common import reopen_for_resume

    create_run(DiscoveryConfig(), secrets_dir / "old", load_task("preference-synthetic")).close()
    world_secret.use_file(write_secret(secrets_dir / "first", "a" * 40))
    config, archive = reopen_for_resume(secrets_dir / "old", {})
    archive.close()
    assert config.world_secret is None and "made before world secrets" in capsys.readouterr().err


def test_the_docs_task_and_the_outside_task_draw_their_hidden_data_from_the_secret():
    """tests/docs_task.py's hidden centres and examples/robust-weights' true line and held-out data come from the
    data seed and the secret: the same secret gives the same numbers, the public seed alone does not give them."""
    import sys
    from pathlib import Path

    from sklearn.datasets import make_regression

    root = Path(__file__).resolve().parent
    sys.path[:0] = [str(root), str(root.parent / "examples" / "robust-weights")]
    try:
        import docs_task
        from llm2_robust_weights import task as robust
    finally:
        del sys.path[:2]
    location = docs_task.Settings()
    centres = docs_task._build(location)[1]["centres"]
    assert torch.equal(centres, docs_task._build(location)[1]["centres"])
    public = 10 * torch.randn(location.batches, generator=torch.Generator().manual_seed(location.data_seed))
    assert not torch.allclose(centres, public)
    regression = robust.Settings()
    coef = robust.build_data(regression)[1]["coef"]
    assert torch.equal(coef, robust.build_data(regression)[1]["coef"])
    _, _, public_coef = make_regression(n_samples=regression.samples + robust.TEST_SAMPLES,
                                        n_features=robust.FEATURES, noise=1.0, bias=3.0, coef=True,
                                        random_state=regression.data_seed)
    assert not np.allclose(coef.numpy(), public_coef)
