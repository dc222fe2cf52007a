#!/usr/bin/env bash
# Sets up .venv: the CPU build of torch first (so no multi-GB CUDA build is pulled), then llm2 with its extras
# (Hugging Face/TRL, Ray, mergekit, development tools, gymnasium).
# --with-test-tools also installs Debian's chromium, which the report test renders pages with.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "${1:-}" = "--with-test-tools" ] && ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e ".[hf,ray,dev,merging,rl]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import llm2, torch, trl, ray, gymnasium" # fail here, loudly, if the install did not work
