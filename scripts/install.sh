#!/usr/bin/env bash
# Create .venv (if missing) and install torch (CPU wheel pinned first), mtapp with its dev tools,
# CTranslate2 and the server's FastAPI/uvicorn.
# Sourced by run.sh and test.sh; safe to run again (it only installs what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# A plain `torch` requirement would pull a multi-GB CUDA build: pin the CPU-capable release first.
TORCH_VERSION=${MTAPP_TORCH_VERSION:-2.13.0}
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet "torch==${TORCH_VERSION}"
fi
.venv/bin/python -m pip install --quiet -e ".[dev,engines,serve]"
# Point the data directory at the shared Multi30k mirror when it sits beside the checkout.
if [ -z "${MTAPP_DATA_DIR:-}" ] && [ -d ../shared/data/multi30k ]; then
  export MTAPP_DATA_DIR="$(cd ../shared/data && pwd)"
fi
