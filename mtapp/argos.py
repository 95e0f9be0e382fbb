"""Argos Translate packages: a trained Transformer as the `.argosmodel` file that
`argostranslate.package.install_from_path` installs and LibreTranslate loads.

A package is a zip archive with one top folder, `translate-<from>_<to>-<version>/`, holding:
- `metadata.json`: the languages (codes and names), the package's and Argos's versions;
- `model/`: the CTranslate2 model (`ct2.export`, whose config adds the source end token that
  mtapp's models expect, so Argos's plain SentencePiece pieces are a complete source);
- `sentencepiece.model`: the run's SentencePiece model, which Argos encodes and decodes with;
- `README.md`: what the model was trained on, how Argos decodes it, and the run's scores.

Argos decodes with its own settings, not the run's: beam ARGOS_BEAM_SIZE (default 4), length
penalty 0.2, CTranslate2's default limits (inputs cut at 1,024 subwords, outputs at 256). So a
position table under 1,024 is refused: CTranslate2 would read positions past its end. Argos
splits text into sentences with MiniSBD, which downloads its model (an ONNX file from GitHub)
the first time a language is used: a package translates offline only once that model is in
Argos's cache (or in a `minisbd/` folder inside the package, which mtapp does not write: the
splitter is not part of a run).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from mtapp import rundir
from mtapp.ct2 import ExportError, export, export_config

ARGOS_VERSION = "1.9"  # the package format (metadata.json's fields) this writes; argos-translate-lt 1.12 reads it
SMALLEST_TABLE = 1024  # CTranslate2 cuts inputs at 1,024 subwords (translate_batch's max_input_length)
NAMES = {"cs": "Czech", "de": "German", "en": "English", "fr": "French"}  # Multi30k's languages


def package(checkpoint: Path, out: Path, quantization: str = "float32", force: bool = False, version: str = "1.0"):
    """Write the run of `checkpoint` as the Argos package `out` (a .argosmodel file; module docstring)."""
    if out.suffix != ".argosmodel":
        raise ExportError(f"--out {out}: an Argos package is a file ending in .argosmodel")
    if out.exists() and not force:
        raise ExportError(f"{out} exists: choose another --out, or pass --force to replace it")
    with tempfile.TemporaryDirectory(prefix="mtapp-argos-") as tmp:
        model = Path(tmp) / "model"
        export(checkpoint, model, quantization)  # refuses what CTranslate2 cannot run (LSTM, hybrid)
        cfg = export_config(model)
        if cfg.model.max_positions < SMALLEST_TABLE:
            raise ExportError(
                f"{checkpoint}: model.max_positions is {cfg.model.max_positions}; Argos gives CTranslate2 inputs of up "
                f"to {SMALLEST_TABLE} subwords, past the end of this position table. Train with model.max_positions "
                f">= {SMALLEST_TABLE}, or export --format ctranslate2 and translate with mtapp, which splits long lines"
            )
        src, tgt = cfg.data.src_lang, cfg.data.tgt_lang
        folder = Path(tmp) / f"translate-{src}_{tgt}-{version.replace('.', '_')}"
        folder.mkdir()
        shutil.move(model, folder / "model")
        shutil.move(folder / "model" / rundir.TOKENIZER_FILE, folder / "sentencepiece.model")
        metadata = {
            "package_version": version,
            "argos_version": ARGOS_VERSION,
            "from_code": src,
            "from_name": NAMES.get(src, src),
            "to_code": tgt,
            "to_name": NAMES.get(tgt, tgt),
            "type": "translate",
        }
        (folder / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        (folder / "README.md").write_text(readme(checkpoint, cfg, quantization), encoding="utf-8")
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        try:
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(folder.rglob("*")):
                    archive.write(path, path.relative_to(folder.parent))
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
    return out


def readme(checkpoint: Path, cfg, quantization: str) -> str:
    """The package's README.md: the model, its training data, how Argos decodes it, its scores."""
    d, m = cfg.data, cfg.model
    lines = [
        f"# {NAMES.get(d.src_lang, d.src_lang)} -> {NAMES.get(d.tgt_lang, d.tgt_lang)}, trained with mtapp",
        "",
        f"A Transformer ({m.encoder_layers}+{m.decoder_layers} layers, d_model {m.d_model}, {m.heads} heads, "
        f"FFN {m.ffn_dim}) trained on the {d.corpus} corpus, split {d.train_split} "
        f"({d.src_lang}->{d.tgt_lang}), with a {cfg.tokenizer.vocab_size}-piece joint SentencePiece "
        f"{cfg.tokenizer.model_type} vocabulary. Weights: {quantization} (CTranslate2). From "
        f"`{checkpoint.parent.name}/{checkpoint.name}`.",
        "",
        "Argos decodes with its own settings (beam ARGOS_BEAM_SIZE, default 4; length penalty 0.2), not the "
        f"run's (beam {cfg.decode.beam}, length penalty {cfg.decode.length_penalty}). Its sentence splitter "
        "(MiniSBD) downloads its model at first use: offline, put that model in Argos's cache first.",
        "",
    ]
    which = rundir.checkpoint_which(checkpoint)  # the scores of this checkpoint, not of another in the run
    found = []
    for path in sorted((checkpoint.parent / rundir.EVAL_DIR).glob("*.json")):
        name = path.stem if which == rundir.BEST else path.stem.removesuffix(f".{which}")
        if path != rundir.eval_file(checkpoint.parent, name, which):
            continue
        result = rundir.read_eval(path)
        if "bleu" in result and "rows" not in result:  # one split's scores (not --tune's or --split all's)
            found.append((name, result))
    if found:
        lines += [f"Scores of `{checkpoint.name}` in its run (`python -m mtapp.evaluate`):", ""]
        lines += ["| split | engine | beam | BLEU | chrF |", "|---|---|---|---|---|"]
        for name, r in found:
            engine = f"{r.get('engine', '?')} {r.get('quantize') or 'float32'}"
            lines.append(
                f"| {name} | {engine} | {r.get('beam', '?')} | {r['bleu']:.2f} | {r.get('chrf', float('nan')):.2f} |"
            )
        lines += ["", f"BLEU signature: `{found[0][1].get('bleu_signature', '')}`"]
    else:
        lines += ["The checkpoint was not evaluated: no scores (`python -m mtapp.evaluate --run RUN` writes them)."]
    return "\n".join(lines) + "\n"
