"""Start a new run directory or reopen one to resume; record config, seeds, versions and later changes."""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

from llm2.archive import Archive, RunInfo
from llm2.discovery.config import DiscoveryConfig
from llm2.task_api.base import Task
from llm2.task_api.card import TaskCard

VERSIONED_PACKAGES = ("llm2", "torch", "numpy", "transformers", "trl", "ray", "openai", "scikit-learn")
# What a resumed run may change: how it asks (the proposer's endpoint, model, limits) and how long it goes on.
RESUMABLE = ("generations", "proposer_options", "workers", "timeout_s", "max_reasks")


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


def create_run(config: DiscoveryConfig, run_dir: Path, task: Task) -> Archive:
    if Archive.exists(run_dir):
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another "
                              "--run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    seeds = {"proposer_seed": config.seed, "training_seeds": config.training_seeds(),
             **{k: v for k, v in config.task_settings.items() if "seed" in k}}
    info = RunInfo(run_id=uuid.uuid4().hex[:12], task=config.task, proposer=config.proposer,
                   model=str(config.proposer_options.get("model", "")), config=config.to_dict(), seeds=seeds,
                   versions=collect_versions(), started_at=time.time(), finished_at=None, status="running")
    card = TaskCard.of(task, task.settings_from_dict(config.task_settings))
    return Archive.create(run_dir, info, card.to_dict())


def reopen_run(run_dir: Path, changes: dict[str, Any]) -> tuple[DiscoveryConfig, Archive, list[str]]:
    """The recorded config, with the changes a resume may make (RESUMABLE) applied and recorded in the run's
    history; returns the lines that say what changed. ArchiveError when the directory holds no usable run."""
    archive = Archive.open(run_dir)
    try:
        recorded = DiscoveryConfig.from_dict(dict(archive.run.config))
        check_world_secret(recorded)
        wanted = {k: v for k, v in changes.items() if k in RESUMABLE and v is not None}
        if "proposer_options" in wanted:
            wanted["proposer_options"] = {**recorded.proposer_options, **wanted["proposer_options"]}
        changed = {k: v for k, v in wanted.items() if getattr(recorded, k) != v}
        config = dataclasses.replace(recorded, **changed)
    except (ValueError, TypeError):
        archive.close()
        raise
    lines = [f"{k}: {getattr(recorded, k)!r} -> {v!r}" for k, v in changed.items()]
    archive.add_run_event("resumed", {"changed": {k: {"from": getattr(recorded, k), "to": v}
                                                  for k, v in changed.items()}, "versions": collect_versions()})
    if changed:
        archive.set_run_config(config.to_dict(), str(config.proposer_options.get("model", "")))
    return config, archive, lines


class WorldSecretMismatch(ValueError):
    """The run was made with another world secret: its worlds, and so its scores, would not be the same."""


def check_world_secret(config: DiscoveryConfig) -> None:
    from llm2.task_api import world_secret

    if config.world_secret is not None and config.world_secret != world_secret.fingerprint():
        raise WorldSecretMismatch(
            f"the run was made with the world secret whose fingerprint is {config.world_secret}, not with the one in "
            f"use ({world_secret.fingerprint()}); give the run's secret with --world-secret FILE")


def run_executor(config: DiscoveryConfig, task: Task, settings: Any, run_dir: Path):
    """The executor a run's config asks for, warmed at the run's settings (a context manager)."""
    from llm2.discovery.checkpoints import checkpoint_dir
    from llm2.execution import make_executor

    return make_executor(config.executor, task_spec=config.task, task=task, workers=config.resolved_workers(),
                         timeout_s=config.timeout_s, cascade=config.cascade, warm_settings=settings,
                         allow_missing=frozenset(config.allow_missing), ray_address=config.ray_address,
                         keep_weights_dir=checkpoint_dir(run_dir) if config.keep_checkpoints else None)
