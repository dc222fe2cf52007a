"""Shared test settings: offline, a persistent world cache inside the repo, one torch thread per process."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LLM2_CACHE_DIR", str(REPO / ".llm2-cache" / "tests"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# A fixed world secret, so the worlds (and every number from them) are the same on every machine; git keeps no
# file modes beyond the executable bit, and a secret others may read is refused, hence the chmod.
os.chmod(REPO / "tests" / "world-secret", 0o600)
os.environ["LLM2_WORLD_SECRET"] = str(REPO / "tests" / "world-secret")
