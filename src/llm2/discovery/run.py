"""Start a new run directory or reopen one to resume; record config, seeds and versions."""

from __future__ import annotations

import platform
import sys
import time
import uuid
from importlib import metadata
from pathlib import Path

from llm2.archive import Archive, RunInfo
from llm2.discovery.config import DiscoveryConfig

VERSIONED_PACKAGES = ("llm2", "torch", "numpy", "transformers", "trl", "ray")


def collect_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def default_run_dir() -> Path:
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


def create_run(config: DiscoveryConfig, run_dir: Path) -> Archive:
    if (run_dir / "archive.sqlite").exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    seeds = {"proposer_seed": config.seed, "training_seeds": config.training_seeds(), "world_seed": config.world_seed}
    info = RunInfo(run_id=uuid.uuid4().hex[:12], task=config.task, proposer=config.proposer,
                   model=str(config.proposer_options.get("model", "")), config=config.to_dict(), seeds=seeds,
                   versions=collect_versions(), started_at=time.time(), finished_at=None, status="running")
    return Archive.create(run_dir, info)


def reopen_run(run_dir: Path, generations: int | None = None) -> tuple[DiscoveryConfig, Archive]:
    """The recorded config wins over the command line, except for a new number of generations (to extend a run)."""
    archive = Archive.open(run_dir)
    recorded = dict(archive.run.config)
    if generations is not None:
        recorded["generations"] = generations
    return DiscoveryConfig.from_dict(recorded), archive
