"""`python -m scripts.peers.bench`: mtapp against OpenNMT-py and JoeyNMT — the same data, the same
model, the same recipe and the same wall-clock budget, one system after another.

    scripts/bench_peers.sh [--minutes 10] [--out DIR]         installs the peers, then runs this:
    python -m scripts.peers.bench --minutes 10 --out DIR [--peers-dir .cache/peers]   (in the repository root)

Every system trains the shared Transformer (`Shared`: 3+3 layers, d_model 256, 4 heads, FFN
1024, label smoothing 0.1, Adam 0.9/0.98, peak lr 5e-4 after a linear warmup, ~4096-token
batches) on Multi30k de→en encoded with one joint 8k SentencePiece model, for `--minutes` of
training counted from its first batch; then translates test_2016_flickr with beam 5 from its
last weights. Every command computes with the same intra-op thread count, every core this
process may use (`Shared.threads`: mtapp chooses it itself, the peers' torch reads it from
OMP_NUM_THREADS; the table shows the count each peer's torch reported). Figures, the same way
for every system:

- real target tokens/s: target tokens trained on (pieces + eos, pads excluded, each toolkit's
  own count) over the seconds from the first batch to the end of training; mtapp's validation
  at epoch ends is inside its budget but outside these seconds; the peers never validate;
- peak RSS: the training process's largest process (ru_maxrss), and the sampled peak of its
  whole process tree (PSS);
- sentences/s: test sentences over each system's own decoding time (model loaded), and over the
  whole translate command (start-up and model loading included);
- output subwords/s: the subwords of its translations (segmented by the shared model) over its
  decoding time. After a short budget a peer's model may still repeat a few words ("A man a a
  a."): its search ends sooner, and sentences/s then measures the length of the translations
  more than the speed of the search;
- sentences/s at equal work: the test set decoded again with every output held to
  `--fixed-length` subwords (eos blocked until then, the search ended one step later), so that
  every system runs the same number of decoder steps for every beam of every sentence, whatever
  its model has learnt;
- decoding rounds: every system is trained first; then the decodes run in `--decode-rounds`
  rounds, each system in turn within a round (both decodes), so that a slower or faster spell of
  a shared machine falls on every system alike. Each decoding figure is that of the median
  round; peers.json keeps every round's seconds;
- BLEU: sacreBLEU on detokenised output against the raw references, one signature for all;
- model FLOP utilisation: useful training FLOPs per second (`mtapp.bench.machine`) over the measured
  fp32 matmul peak of this machine (and over the bf16 peak, for context).

The peers run from their own virtual environments under `--peers-dir` (scripts/bench_peers.sh
makes them); a peer that is missing or fails is reported with the reason, and the others go on.
Writes DIR/peers.json and DIR/peers.md (the table that is also printed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from mtapp import ct2, rundir
from mtapp.bench.child import Command, Finished, run
from mtapp.bench.machine import cpu_name, matmul_peak, training_flops_per_token
from mtapp.config import DEFAULT_CONFIG, Config, load_config
from mtapp.data.corpora import read_lines
from mtapp.runtime import amp_dtype
from mtapp.scoring import score
from scripts.peers import peer_joeynmt, peer_opennmt
from scripts.peers.data import Pieces, count_pieces, detokenise, prepare_pieces, write_lines
from scripts.peers.report import markdown
from scripts.peers.settings import Shared

PEERS = {m.KEY: m for m in (peer_opennmt, peer_joeynmt)}
ENGINE_SYSTEMS = {"mtapp-ct2": "float32", "mtapp-ct2-int8": "int8"}  # mtapp's model, decoded by CTranslate2
SYSTEMS = ("mtapp", "mtapp-fp32", *ENGINE_SYSTEMS, *PEERS)
LAUNCHER = Path(__file__).with_name("launch.py")


class SystemFailed(RuntimeError):
    """A system could not be installed, trained or run; the message says why."""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.peers.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="training budget of each system (default 10)")
    p.add_argument("--out", type=Path, required=True, help="folder for data, runs, logs, peers.json, peers.md")
    p.add_argument("--peers-dir", type=Path, default=Path(os.environ.get("MTAPP_PEERS_DIR", ".cache/peers")))
    p.add_argument("--systems", default="mtapp,opennmt,joeynmt", help=f"comma-separated, from {', '.join(SYSTEMS)}")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="a shipped config's name, or a YAML file")
    p.add_argument("--warmup", type=int, default=Shared.warmup, help="learning-rate warmup updates")
    p.add_argument(
        "--fixed-length",
        type=int,
        default=Shared.fixed_length,
        help="subwords per sentence of the equal-work decoding (0 = skip it)",
    )
    p.add_argument(
        "--decode-rounds",
        type=int,
        default=Shared.decode_rounds,
        help="decode everything this many times, the systems in turn; figures are medians",
    )
    p.add_argument("--test-sentences", type=int, default=0, help="translate only this many (0 = all; for trials)")
    args = p.parse_args(argv)
    systems = args.systems.split(",")
    if unknown := set(systems) - set(SYSTEMS):
        p.error(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    if args.decode_rounds < 1:
        p.error("--decode-rounds must be at least 1")
    for name in set(systems) & set(ENGINE_SYSTEMS):
        if "mtapp" not in systems[: systems.index(name)]:
            p.error(f"{name} decodes the model system mtapp trained: list mtapp before it in --systems")
    shared = Shared(
        minutes=args.minutes, warmup=args.warmup, fixed_length=args.fixed_length, decode_rounds=args.decode_rounds
    )
    cfg = load_config(args.config, shared.mtapp_overrides())
    args.out.mkdir(parents=True, exist_ok=True)
    pieces = prepare_pieces(cfg, args.out / "data", args.test_sentences)
    payload = {"settings": vars(shared) | {"config": str(args.config)}, "machine": machine(), "systems": []}
    payload["flops_per_target_token"] = training_flops_per_token(
        pieces.src_lengths, pieces.tgt_lengths, shared.d_model, shared.ffn_dim, (shared.layers,) * 2, pieces.vocab_size
    )

    def save() -> None:
        (args.out / "peers.json").write_text(json.dumps(payload, indent=2) + "\n")

    trained: list[tuple[dict, Decoder]] = []
    for name in systems:
        doing = "exporting mtapp's model" if name in ENGINE_SYSTEMS else f"training {shared.minutes:g} min"
        print(f"== {name}: {doing}", flush=True)
        try:
            if name in ENGINE_SYSTEMS:
                mtapp = next((r for r, _ in trained if r["system"] == "mtapp"), None)
                if mtapp is None:
                    raise SystemFailed("mtapp did not train, so there is no model to export")
                result, decoder = export_mtapp(name, mtapp, shared, pieces, args.out)
            elif name.startswith("mtapp"):
                result, decoder = train_mtapp(name, args.config, cfg, shared, pieces, args.out / name)
            else:
                venv = args.peers_dir.resolve() / name
                result, decoder = train_peer(PEERS[name], shared, pieces, args.out / name, venv)
            trained.append((result, decoder))
        except SystemFailed as e:
            result = {"system": name, "error": str(e)}
        print("   ", result, flush=True)  # training figures; the decoding figures follow the rounds
        payload["systems"].append(result)
        save()
    decode_rounds(trained, shared, pieces, save)
    table = markdown(payload)
    (args.out / "peers.md").write_text(table)
    print(table)
    return 0


def machine() -> dict:
    """The machine and its measured matmul peaks (n = 2048, best of 5, default threads)."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "fp32_peak_flops": matmul_peak(torch.float32),
        "bf16_peak_flops": matmul_peak(torch.bfloat16),
    }


@dataclass(frozen=True)
class Decoded:
    """One decode of the test set by one system."""

    seconds: float | None  # the system's own decoding time (model loaded); None if it printed none
    command: Finished  # the whole translate command
    hyps: list[str]  # detokenised translations


Decoder = Callable[[int], Decoded]  # length (0: as the model decodes; n: `Shared.fixed_length`) -> one decode


# ---- mtapp ------------------------------------------------------------------------------------------
def train_mtapp(
    name: str, config: Path, cfg: Config, shared: Shared, pieces: Pieces, folder: Path
) -> tuple[dict, Decoder]:
    """Train with `python -m mtapp.train`; the decoder translates with `python -m mtapp.evaluate`
    (last weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    run_dir = folder / "run"
    amp = "off" if name == "mtapp-fp32" else cfg.train.amp
    sets = [*shared.mtapp_overrides(), f"train.amp={amp}"]
    args = [sys.executable, "-m", "mtapp.train", "--config", str(config), "--run-dir", str(run_dir)]
    args += [a for s in sets for a in ("--set", s)]
    trained = run_checked(Command(args, folder / "train.log", env=shared.thread_env()), shared, "training")
    records = rundir.read_log(run_dir)
    epochs = [r for r in records if r["event"] == "epoch"]
    seconds = sum(r["seconds"] for r in epochs)  # update time: validation excluded
    result = {
        "system": name,
        "version": "this checkout",
        "precision": "bf16 autocast" if amp_dtype(torch.device("cpu"), amp) else "fp32",
        "threads": shared.threads,  # runtime.set_threads: every core this process may use
        "updates": epochs[-1]["update"],
        "tgt_tokens": sum(r["tgt_tokens"] for r in epochs),
        "train_seconds": seconds,
        "tgt_tokens_per_s": sum(r["tgt_tokens"] for r in epochs) / seconds,
        **training_figures(trained),
    }

    model = ["--checkpoint", str(rundir.checkpoint_file(run_dir, rundir.LAST))]
    return result | {"run_dir": str(run_dir)}, mtapp_decoder(model, folder, shared, pieces)


def mtapp_decoder(model: list[str], folder: Path, shared: Shared, pieces: Pieces) -> Decoder:
    def decode(length: int) -> Decoded:
        scores = folder / ("fixed.json" if length else "test.json")
        found, translated, hyps = mtapp_translate(model, scores, pieces, shared, length)
        return Decoded(found["translate_seconds"], translated, hyps)

    return decode


def export_mtapp(name: str, mtapp: dict, shared: Shared, pieces: Pieces, out: Path) -> tuple[dict, Decoder]:
    """mtapp's trained model (its last weights) exported to CTranslate2 (`ENGINE_SYSTEMS[name]`
    weights): the training figures are mtapp's, the decoder `mtapp.evaluate` on the export."""
    import ctranslate2

    quantization, folder = ENGINE_SYSTEMS[name], out / name
    last = rundir.checkpoint_file(Path(mtapp["run_dir"]), rundir.LAST)
    export = ct2.export(last, folder / "export", quantization, force=True)
    result = mtapp | {"system": name, "version": f"mtapp on CTranslate2 {ctranslate2.__version__} {quantization}"}
    result["precision"] = f"{mtapp['precision']}; decoding {quantization}"
    return result, mtapp_decoder(["--run", str(export)], folder, shared, pieces)


def mtapp_translate(
    model: list[str], scores: Path, pieces: Pieces, shared: Shared, length: int = 0
) -> tuple[dict, Finished, list[str]]:
    """`python -m mtapp.evaluate` of the test sources with `model` (its --checkpoint or --run):
    its scores (JSON file `scores`, with the translations and the log beside it), the command's
    measurements, the translations. `length` > 0: every output `length` subwords, `length` + 1
    decoder steps per beam (`Shared.fixed_length`)."""
    args = [sys.executable, "-m", "mtapp.evaluate", *model]
    args += ["--src", str(pieces.text("test", pieces.src_lang)), "--ref", str(pieces.text("test", pieces.tgt_lang))]
    args += ["--beam", str(shared.beam), "--max-tokens", str(shared.max_tokens), "--json", str(scores)]
    if length:
        args += ["--min-len", str(length), "--max-len-a", "0", "--max-len-b", str(length)]
    translated = run_checked(Command(args, scores.with_suffix(".log"), env=shared.thread_env()), shared, "translation")
    return rundir.read_eval(scores), translated, rundir.read_hyps(scores)  # evaluate writes both


# ---- the peers ---------------------------------------------------------------------------------------
def train_peer(peer, shared: Shared, pieces: Pieces, folder: Path, venv: Path) -> tuple[dict, Decoder]:
    """Train through launch.py in the peer's environment; the decoder translates the test
    pieces with the peer's own command."""
    python = venv / "bin" / "python"
    if not python.exists():
        status = venv.with_suffix(".status")
        reason = status.read_text().strip() if status.exists() else f"no environment at {venv}"
        raise SystemFailed(f"{peer.NAME} {peer.VERSION} is not installed: {reason} (see scripts/bench_peers.sh)")
    folder.mkdir(parents=True, exist_ok=True)
    config = peer.write_config(folder, pieces, shared)
    summary = folder / "summary.json"
    args = [str(python), str(LAUNCHER), peer.KEY, str(shared.minutes * 60), str(summary), "--"]
    log = folder / "train.log"
    command = Command(args + peer.train_args(config), log, env=shared.thread_env(), cwd=folder)
    trained = run_checked(command, shared, "training")
    counted = json.loads(summary.read_text())
    if not counted.get("tgt_tokens"):
        raise SystemFailed(f"{peer.NAME} trained on no tokens; see {log}")
    result = {
        "system": peer.KEY,
        "version": f"{peer.NAME} {peer.VERSION}",
        "precision": "fp32",
        "threads": counted.get("threads"),  # torch's intra-op threads at the end of training
        "updates": counted["updates"],
        "tgt_tokens": counted["tgt_tokens"],
        "train_seconds": counted["seconds"],
        "tgt_tokens_per_s": counted["tgt_tokens"] / counted["seconds"],
        "reported_tokens_per_s": peer.reported_tokens_per_s(log.read_text(errors="replace")),
        **training_figures(trained),
    }

    def decode(length: int) -> Decoded:
        hyp = folder / ("fixed.hyp" if length else "test.hyp")
        return Decoded(*peer_translate(peer, venv, config, hyp, pieces, shared, length))

    return result, decode


def peer_translate(
    peer, venv: Path, config: Path, hyp: Path, pieces: Pieces, shared: Shared, length: int = 0
) -> tuple[float | None, Finished, list[str]]:
    """The peer's beam search over the test pieces from its last checkpoint: its own decoding
    seconds, the command's measurements, the detokenised translations (also written to `hyp`,
    the pieces beside it). `length` > 0: `length` + 1 decoder steps per beam (`Shared.fixed_length`)."""
    pieces_out = hyp.with_suffix(".hyp.pieces")
    command = peer.translate_command(venv, config, peer.checkpoint(hyp.parent), pieces, pieces_out, shared, length)
    translated = run_checked(command, shared, "translation")
    decoded = peer.decode_seconds(command.log.read_text(errors="replace"))
    hyps = detokenise(pieces.spm_model, read_lines(pieces_out))
    write_lines(hyp, hyps)
    if len(hyps) != len(pieces.test_references):
        raise SystemFailed(f"{peer.NAME} wrote {len(hyps)} translations for {len(pieces.test_references)} sentences")
    return decoded, translated, hyps


# ---- decoding rounds ---------------------------------------------------------------------------------
def decode_rounds(trained: list[tuple[dict, Decoder]], shared: Shared, pieces: Pieces, save: Callable[[], None]):
    """`shared.decode_rounds` rounds; in each, every trained system decodes the test set (and at
    equal work, unless `fixed_length` is 0), one system after another. Then each result gets the
    median figures (`decoding_summary`); a system whose decode fails gets the error instead."""
    lengths = [0, shared.fixed_length] if shared.fixed_length else [0]
    runs = [{length: [] for length in lengths} for _ in trained]  # per system: length -> its decodes
    for r in range(shared.decode_rounds):
        for (result, decoder), done in zip(trained, runs):
            if "error" in result:
                continue
            print(f"== decoding round {r + 1} of {shared.decode_rounds}: {result['system']}", flush=True)
            try:
                for length in lengths:
                    done[length].append(decoder(length))
            except SystemFailed as e:
                name = result["system"]
                result.clear()  # the table shows the error in place of the figures
                result |= {"system": name, "error": str(e)}
    for (result, _), done in zip(trained, runs):
        if "error" not in result:
            for length in lengths:
                result |= decoding_summary(done[length], pieces, prefix="fixed_" if length else "")
            print("   ", {k: v for k, v in result.items() if not isinstance(v, (dict, list))}, flush=True)
    save()


def decoding_summary(rounds: list[Decoded], pieces: Pieces, prefix: str = "") -> dict:
    """The figures of the median round by the system's own decoding seconds (of an even count,
    the lower middle one), every round's seconds, and whether every round wrote the same
    translations (a deterministic search does)."""
    timed = [d for d in rounds if d.seconds is not None] or rounds
    median = sorted(timed, key=lambda d: d.seconds or 0.0)[(len(timed) - 1) // 2]
    figures = decoding_figures(median.seconds, median.hyps, pieces, prefix)
    if not prefix:  # the command's figures, and the scores, of the usual decode (the same for every system)
        figures |= {
            "translate_command_seconds": median.command.wall_seconds,
            "sentences_per_s_command": len(median.hyps) / median.command.wall_seconds,
            "translate_peak_rss_mb": max(d.command.peak_rss_mb for d in rounds),
            **pick_scores(score(median.hyps, pieces.test_references)),
        }
    return figures | {
        prefix + "decode_seconds_rounds": [d.seconds for d in rounds],
        prefix + "same_translations_every_round": all(d.hyps == rounds[0].hyps for d in rounds),
    }


# ---- shared by both -----------------------------------------------------------------------------------
def run_checked(command: Command, shared: Shared, what: str) -> Finished:
    """Run; a command that fails or hangs raises SystemFailed with the last line of its log."""
    finished = run(command, timeout=shared.minutes * 60 * 1.5 + 900)  # budget, start-up, saving: or it hangs
    if finished.timed_out:
        raise SystemFailed(f"{what} ran past {finished.wall_seconds:.0f} s and was stopped (log: {command.log})")
    if finished.status != 0:
        lines = command.log.read_text(errors="replace").strip().splitlines() or ["(empty log)"]
        raise SystemFailed(f"{what} failed (exit status {finished.status}): {lines[-1].strip()} (log: {command.log})")
    return finished


def training_figures(trained: Finished) -> dict:
    return {
        "peak_rss_mb": trained.peak_rss_mb,
        "tree_peak_mb": trained.tree_peak_mb,
        "train_command_seconds": trained.wall_seconds,
    }


def decoding_figures(decode_seconds: float | None, hyps: list[str], pieces: Pieces, prefix: str = "") -> dict:
    """Decoding speed per sentence, and per output subword (segmented by the shared model): a
    model that writes short translations decodes more sentences per second, so sentences/s
    alone compares how long each system's translations are as much as how fast it searches.
    At equal work (prefix "fixed_", `Shared.fixed_length`) the subwords per sentence show that
    every system wrote the length it was told (one more where its last step wrote no eos)."""
    sentences, written = len(hyps), count_pieces(pieces.spm_model, hyps)
    figures = {
        "decode_seconds": decode_seconds,
        "sentences_per_s": sentences / decode_seconds if decode_seconds else None,
        "output_pieces_per_sentence": written / sentences,
        "output_pieces_per_s": written / decode_seconds if decode_seconds else None,
    }
    return {prefix + key: value for key, value in figures.items()}


def pick_scores(found: dict) -> dict:
    return {key: found[key] for key in ("bleu", "bleu_signature", "chrf", "num_sentences")}


if __name__ == "__main__":
    sys.exit(main())
