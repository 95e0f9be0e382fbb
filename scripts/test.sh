#!/usr/bin/env bash
# Install, then run the whole test suite and the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
.venv/bin/python -m pytest -q "$@"
