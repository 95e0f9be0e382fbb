#!/usr/bin/env bash
# Prove mtapp's CUDA path and measure it, in under 8 minutes on one NVIDIA GPU:
#
#   scripts/gpu_check.sh [--device cuda|cpu] [--minutes M] [--out DIR]      (default: cuda, 8, runs/gpu_check)
#
# For a machine that has PyTorch with CUDA preinstalled and no network. It uses that python3's
# torch (never installs one: any torch >= the minimum in pyproject.toml), puts this checkout on
# PYTHONPATH, and installs each missing pure-Python dependency from the wheels in $MTAPP_WHEELS
# (default .whl/, git-ignored), which the caller brings along. Fill it where pip works, for the
# GPU machine's Python (3.12 here), e.g.:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#       datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
# (datasets is the one such images usually lack; the list of modules checked is pyproject.toml's.)
# The data: $MTAPP_DATA_DIR, else ../shared/data when it exists, else data/ (copy multi30k/ there).
# Fails loudly at the first thing that does not work; otherwise writes DIR/gpu_check.json and .md.
# `--device cpu` runs every stage at a tiny size in seconds (tests/test_gpu_check.py does).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

# Which of pyproject.toml's dependencies cannot be imported (torch is checked, never installed).
missing_modules() {
  "$PYTHON" - <<'EOF'
import importlib.util, re, sys, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
names = {"pyyaml": "yaml"}  # distribution -> module, where they differ
for dep in deps:
    dist, minimum = re.match(r"([A-Za-z0-9_.-]+)\s*(?:>=\s*([0-9.]+))?", dep).groups()
    if dist == "torch":
        import torch
        have = tuple(int(x) for x in re.findall(r"\d+", torch.__version__)[:2])
        if minimum and have < tuple(int(x) for x in minimum.split(".")[:2]):
            sys.exit(f"gpu_check: torch {torch.__version__} is older than mtapp's minimum {minimum} (pyproject.toml)")
        continue
    module = names.get(dist.lower(), dist.lower().replace("-", "_"))
    if importlib.util.find_spec(module) is None:
        print(dist)
EOF
}

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "gpu_check: $PYTHON cannot import torch; run it with the python that has PyTorch (PYTHON=...)" >&2
  exit 1
fi
missing=$(missing_modules)
if [ -n "$missing" ]; then
  wheels=${MTAPP_WHEELS:-.whl}
  if ! compgen -G "$wheels/*.whl" >/dev/null; then
    echo "gpu_check: missing Python packages: $(echo $missing); no wheels in $wheels to install them from" >&2
    echo "  fill it where pip works: python3 -m pip download --no-deps --only-binary=:all: -d $wheels $(echo $missing) ..." >&2
    exit 1
  fi
  site=${MTAPP_SITE:-/tmp/mtapp-site}
  echo "gpu_check: installing $(echo $missing) from $wheels into $site"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$wheels"/*.whl
  export PYTHONPATH="$PYTHONPATH:$site"
  missing=$(missing_modules)
  if [ -n "$missing" ]; then
    echo "gpu_check: still missing after installing $wheels: $(echo $missing); add their wheels (and their dependencies')" >&2
    exit 1
  fi
fi
if [ -z "${MTAPP_DATA_DIR:-}" ] && [ -d ../shared/data/multi30k ]; then
  export MTAPP_DATA_DIR="$(cd ../shared/data && pwd)"
fi
exec "$PYTHON" -m mtapp.bench gpu "$@"
