#!/usr/bin/env bash
# The main job: install, train the default config (de->en Transformer on Multi30k),
# evaluate test_2016_flickr with beam 5 and print the BLEU report.
# Extra arguments go to `python -m mtapp.train` (e.g. --set train.max_minutes=5).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh
config=multi30k_de_en_transformer  # the run directory is named after the --config given, if one is
previous=""
for arg in "$@"; do
  [[ $previous == --config ]] && config=$(basename -- "$arg" .yaml)
  [[ $arg == --config=* ]] && config=$(basename -- "${arg#--config=}" .yaml)
  previous=$arg
done
RUN_DIR=${RUN_DIR:-runs/$config-$(date +%Y%m%d-%H%M%S)}
started=$(date +%s)
.venv/bin/python -m mtapp.train --run-dir "$RUN_DIR" "$@"
.venv/bin/python -m mtapp.evaluate --run "$RUN_DIR" --beam 5
echo "run directory: $RUN_DIR   (end to end: $(( ($(date +%s) - started) / 60 )) min $(( ($(date +%s) - started) % 60 )) s after install)"
