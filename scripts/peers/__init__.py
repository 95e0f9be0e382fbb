"""mtapp against OpenNMT-py and JoeyNMT (issue #7): the driver of scripts/bench_peers.sh, kept out of
the mtapp package because it installs and runs other toolkits.

    bench.py                           the entry: `python -m scripts.peers.bench` from the repository root
    settings.py                        `Shared`: the model, recipe and budget every system gets
    data.py                            the shared SentencePiece model and the piece files
    peer_opennmt.py, peer_joeynmt.py   each peer's config, commands and log parsing
    launch.py                          runs a peer's training for a budget, with the peer's Python
    report.py                          the table, the ratios and the targets

launch.py runs as a script, so this folder leads the peer's sys.path: no module here may be named
like a standard-library module or a module the toolkits import (tests/test_peers.py checks).
"""
