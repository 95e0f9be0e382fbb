#!/usr/bin/env bash
# mtapp against OpenNMT-py 3.5.1 and JoeyNMT 2.3.0 (issue #7): same data, same model, same
# recipe, same wall-clock budget; one table (printed, and in OUT/peers.md, OUT/peers.json).
#
#   scripts/bench_peers.sh [--minutes 10] [--out runs/peers-DATE] [--systems mtapp,opennmt,joeynmt] ...
#
# Arguments go to `python -m scripts.peers.bench` (scripts/peers/bench.py; the peers' driver is no
# part of the mtapp package). Each peer gets its own virtual environment under $MTAPP_PEERS_DIR
# (default .cache/peers), never mtapp's; torch==2.13.0 (CPU) is installed there first, so the
# peer runs on the same torch as mtapp. A peer that cannot be installed is
# reported in the table with the reason (pip's last lines, in $MTAPP_PEERS_DIR/<peer>.status).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh
PEERS_DIR=${MTAPP_PEERS_DIR:-.cache/peers}
TORCH_VERSION=${MTAPP_TORCH_VERSION:-2.13.0}
mkdir -p "$PEERS_DIR"
PEERS_DIR=$(cd "$PEERS_DIR" && pwd)

# OpenNMT-py 3.5.1 pins torch<2.3: installed without its dependencies, then the ones it imports
# (its transforms import spacy, fasttext, pyahocorasick, rapidfuzz, regex at start-up; pyonmttok
# and configargparse are needed to build its data and options).
install_opennmt() {
  pip_in opennmt --no-deps "OpenNMT-py==3.5.1" &&
    pip_in opennmt configargparse pyyaml sacrebleu sentencepiece six regex rapidfuzz pyahocorasick \
      fasttext-wheel spacy "pyonmttok>=1.37,<2" &&
    "$PEERS_DIR/opennmt/bin/python" -c "import onmt.bin.train, onmt.bin.translate"
}

# JoeyNMT 2.3.0 allows any torch >= 1.12 (the installed 2.13.0 stays); it imports
# importlib_metadata without declaring it.
install_joeynmt() {
  pip_in joeynmt "joeynmt==2.3.0" importlib_metadata &&
    "$PEERS_DIR/joeynmt/bin/python" -c "import joeynmt.training, joeynmt.prediction"
}

pip_in() {
  local name=$1
  shift
  "$PEERS_DIR/$name/bin/python" -m pip install --quiet "$@"
}

# install_peer NAME: a venv with torch, then the peer (once: NAME.status says ok afterwards; delete
# it to reinstall). On failure the venv's python is removed, so the benchmark reports the peer as
# not installed, with the reason from NAME.status.
install_peer() {
  local name=$1 venv="$PEERS_DIR/$1" log="$PEERS_DIR/$1.install.log"
  if [ -f "$PEERS_DIR/$name.status" ] && [ "$(cat "$PEERS_DIR/$name.status")" = ok ] && [ -x "$venv/bin/python" ]; then
    return 0
  fi
  echo "installing $name into $venv (log: $log)"
  if {
    { [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"; } &&
      "$venv/bin/python" -m pip install --quiet "torch==${TORCH_VERSION}" &&
      "install_$name"
  } >"$log" 2>&1; then
    echo ok >"$PEERS_DIR/$name.status"
  else
    { echo "installation failed:"; tail -n 5 "$log"; } >"$PEERS_DIR/$name.status"
    rm -f "$venv/bin/python"
    echo "  $name could not be installed: see $log"
  fi
}

install_peer opennmt
install_peer joeynmt
export MTAPP_PEERS_DIR="$PEERS_DIR"
args=("$@")
for arg in "$@"; do
  [[ $arg == --out || $arg == --out=* ]] && out_given=1
done
[ -n "${out_given:-}" ] || args+=(--out "runs/peers-$(date +%Y%m%d-%H%M%S)")
.venv/bin/python -m scripts.peers.bench "${args[@]}"  # from the repository root: scripts/ is a package
