#!/usr/bin/env bash
# Sets up .venv: the CPU build of torch first (so no multi-GB CUDA build is pulled), then llm2 with its extras
# (Hugging Face/TRL, Ray, mergekit, development tools).
# --with-test-tools also installs Debian's chromium, which the report test renders pages with.
# Each step prints one line when it starts (the installs themselves stay quiet); the whole takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STEPS=5
STEP=0
step() { STEP=$((STEP + 1)); echo "setup [$STEP/$STEPS] $*" >&2; }
quiet_pip() { .venv/bin/python -m pip install -q "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
if [ "${1:-}" = "--with-test-tools" ] && ! command -v chromium >/dev/null 2>&1; then
  STEPS=6
  step "installing chromium (Debian's, for the report test)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [ -x .venv/bin/python ]; then step "using the virtual environment in .venv"; else
  step "creating the virtual environment .venv"; "$PY" -m venv .venv; fi
step "upgrading pip"
quiet_pip --upgrade pip
if .venv/bin/python -c "import torch" 2>/dev/null; then step "torch is already installed"; else
  step "installing torch 2.13.0 (about a minute)"; quiet_pip "torch==2.13.0"; fi
step "installing llm2 with its extras hf, ray, dev, merging (a few minutes)"
quiet_pip -e ".[hf,ray,dev,merging]"
step "checking that llm2, torch, trl and ray import"
.venv/bin/python -c "import llm2, torch, trl, ray" # fail here, loudly, if the install did not work
echo "setup: done; run llm2 with .venv/bin/llm2" >&2
