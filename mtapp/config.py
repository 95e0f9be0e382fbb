"""Typed configuration: one frozen dataclass per YAML section, validated once when loaded.

Every default lives here and nowhere else. `load_config` reads a YAML file, applies
`--set key=value` overrides, checks names, types, ranges and cross-field rules, and returns
a frozen `Config`. Any problem raises `ConfigError` naming the key.

The shipped configs live in the top-level configs/ folder, which the wheel carries as
mtapp/configs/ (pyproject.toml maps it); each states only what it chooses, and `describe` prints
every key with its meaning (`python -m mtapp.train --print-config`). `config_path` finds a shipped
config by its name (`multi30k_de_en_lstm`, with or without `.yaml`), and `DEFAULT_CONFIG` is the
one that `python -m mtapp.train` trains without `--config`: its choices are the defaults here.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mtapp.specials import model_limits, with_specials


class ConfigError(ValueError):
    """A configuration value is missing, unknown, mistyped or inconsistent."""


def _config_dir() -> Path:
    """mtapp/configs/ in an installed wheel; else the configs/ folder beside the package (a source tree)."""
    package = Path(__file__).resolve().parent
    inside = package / "configs"
    return inside if (inside / "multi30k_de_en_transformer.yaml").is_file() else package.parent / "configs"


CONFIG_DIR = _config_dir()
DEFAULT_CONFIG = CONFIG_DIR / "multi30k_de_en_transformer.yaml"
BASE_CONFIG = CONFIG_DIR / "multi30k_de_en_transformer_base.yaml"  # the defaults: the claims' and peers' shape


def shipped_configs() -> list[str]:
    """The names of the configs that ship with mtapp."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def config_path(name_or_path: str | Path) -> Path:
    """A YAML file's path as given, or a shipped config's file from its name (".yaml" optional)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = ", ".join(shipped_configs())
    if path.parent != Path("."):
        raise ConfigError(f"config file {path} does not exist (the shipped configs, by name: {shipped})")
    found = CONFIG_DIR / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    if not found.is_file():
        raise ConfigError(f"no config named {path.name!r}: the shipped configs are {shipped}; or give a YAML file")
    return found


def _key(default: Any, meaning: str) -> Any:
    """A config key: its default and what it means (`describe` prints the meaning beside it)."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"meaning": meaning})
    return field(default=default, metadata={"meaning": meaning})


@dataclass(frozen=True)
class DataConfig:
    corpus: str = _key("multi30k", "a registered corpus (multi30k), or text | tsv | hf with `paths`")
    dir: str = _key("", 'data directory holding multi30k/; "" = $MTAPP_DATA_DIR, else data/')
    src_lang: str = _key("de", "source language code (multi30k: de, en, fr, cs)")
    tgt_lang: str = _key("en", "target language code")
    train_split: str = _key("train", "split to train on")
    valid_split: str = _key("val", "split for the validation loss and BLEU after each epoch")
    test_split: str = _key("test_2016_flickr", "split `python -m mtapp.evaluate` scores by default")
    paths: dict[str, str] = _key({}, "text/tsv/hf corpora only: split -> file prefix / TSV file / data file")
    hf_path: str = _key("", "hf corpora only: datasets.load_dataset path (hub name, json, csv, ...)")
    hf_name: str = _key("", "hf corpora only: the dataset's configuration (e.g. de-en for wmt/wmt14)")
    max_len: int = _key(256, "training pairs with a side longer than this (subwords) are dropped and counted")
    cache_dir: str = _key(".cache/mtapp", "trained tokenizers and encoded corpora, keyed by content")
    num_proc: int = _key(0, "processes tokenising a corpus into the Arrow cache (0 = one per core; fewer if small)")


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = _key(8000, "joint SentencePiece vocabulary size (both languages)")
    model_type: Literal["unigram", "bpe"] = _key("unigram", "unigram | bpe")
    joint: bool = _key(True, "one vocabulary for source and target (required for tied embeddings)")
    character_coverage: float = _key(1.0, "share of characters the vocabulary must cover")
    sampling_alpha: float = _key(
        0.0,
        "training pairs only: segment them anew each epoch by sampling, seeded by batching.seed and the epoch "
        "(subword regularization; unigram: the smoothing, lower = noisier; bpe: BPE-dropout's merge-drop "
        "chance); 0 = off, one segmentation",
    )


@dataclass(frozen=True)
class BatchingConfig:
    strategy: Literal["global", "random", "sorted", "tokens", "packed_rows"] = _key(
        "tokens", "global | random | sorted | tokens | packed_rows (README, Batching)"
    )
    max_tokens: int = _key(4096, "tokens, packed_rows: padded token slots per batch, on each side")
    batch_cost: float = _key(0.125, "tokens: padding (fraction of max_tokens) a batch must save to be split off")
    multiple_of: int = _key(1, "tokens: padded lengths rounded up to a multiple of this")
    batch_size: int = _key(128, "global, random, sorted: sentences per batch")
    pool_batches: int = _key(100, "sorted: batches per length-sorted pool")
    row_tokens: int = _key(512, "packed_rows (transformer only): tokens per row, on each side")
    pad_side: Literal["post", "pre"] = _key(
        "post", "source padding: post (after the words) | pre (before); the target is always post-padded"
    )
    seed: int = _key(1, "seed of the per-epoch shuffling")


@dataclass(frozen=True)
class ModelConfig:
    type: Literal["transformer", "lstm", "hybrid"] = _key("transformer", "transformer | lstm | hybrid")
    d_model: int = _key(256, "embedding size (and Transformer width)")
    heads: int = _key(4, "attention heads (d_model must be divisible by heads)")
    encoder_layers: int = _key(3, "(transformer/hybrid) Transformer encoder layers")
    decoder_layers: int = _key(3, "decoder layers (lstm: must equal rnn_layers)")
    ffn_dim: int = _key(1024, "(transformer/hybrid) feed-forward inner size")
    dropout: float = _key(0.1, "dropout on embeddings and residual branches (lstm: also between layers)")
    attention_dropout: float = _key(0.0, "(transformer/hybrid) dropout on attention weights")
    activation_dropout: float = _key(0.0, "(transformer/hybrid) dropout inside the feed-forward block, after the ReLU")
    max_positions: int = _key(1024, "(transformer/hybrid) longest sequence the position table covers")
    rnn_hidden: int = _key(256, "(lstm/hybrid) LSTM hidden size per direction; the LSTM decoder has twice this")
    rnn_layers: int = _key(2, "(lstm/hybrid) bidirectional LSTM encoder layers")
    encoder_padding: Literal["padded", "masked", "packed", "unrolled"] = _key(
        "packed", "(lstm/hybrid) how the LSTM meets pads: padded | masked | packed | unrolled"
    )


@dataclass(frozen=True)
class LossConfig:
    label_smoothing: float = _key(0.1, "probability mass spread over the vocabulary")
    mask_padding: bool = _key(True, "false: pads count as targets too (what unmasked code does), to show the harm")


@dataclass(frozen=True)
class TrainConfig:
    lr: float = _key(0.001, "peak learning rate (after warmup; then as train.schedule says)")
    warmup_steps: int = _key(400, "updates of linear warmup")
    schedule: Literal["inverse_sqrt", "linear"] = _key(
        "inverse_sqrt",
        "after warmup: inverse_sqrt (lr x sqrt(warmup_steps / update)) | linear (falls in a line to 0 at the end of "
        "the budget, max_minutes or max_updates, whichever ends first: budget-aware, Li et al. 2020; with "
        "max_minutes the rate follows the clock; a run that patience or max_epochs stops first ends above 0)",
    )
    betas: tuple[float, float] = _key((0.9, 0.98), "Adam betas")
    weight_decay: float = _key(0.0, "Adam weight decay")
    clip_norm: float = _key(1.0, "gradient norm clipping (0 = off)")
    accumulate: int = _key(1, "batches per optimizer update")
    max_epochs: int = _key(30, "stop after this many epochs")
    max_minutes: float = _key(25.0, "... or after this much wall-clock time (0 = no limit)")
    max_updates: int = _key(0, "... or after this many optimizer updates (0 = no limit)")
    patience: int = _key(5, "... or after this many epochs without a better validation BLEU (0 = never)")
    device: Literal["auto", "cpu", "cuda"] = _key("auto", "auto (CUDA if present) | cpu | cuda")
    amp: Literal["auto", "off", "bf16", "fp16", "bf16-pure"] = _key(
        "auto",
        "mixed precision: auto (bf16 where the hardware has it) | off | bf16 | fp16 (autocast) | bf16-pure "
        "(bf16 weights, float32 master weights in the optimizer; mtapp/master.py)",
    )
    compile: bool = _key(False, "torch.compile the model (in place; checkpoints are unchanged)")
    compile_backend: Literal["inductor", "aot_eager", "eager", "cudagraphs"] = _key(
        "inductor", "torch.compile's backend: inductor (generates kernels) | aot_eager | eager | cudagraphs"
    )
    compile_shapes: Literal["auto", "dynamic"] = _key(
        "auto",
        "compile: auto (PyTorch's default: specialised to the first shapes, recompiled for any shape once they change) "
        "| dynamic (for any batch and length from the start, dynamic=True)",
    )
    pin_memory: bool = _key(True, "CUDA only: batches copied from page-locked memory, without blocking")
    seed: int = _key(1, "seed of parameter init and dropout")
    valid_beam: int = _key(1, "beam size of the validation BLEU (1 = greedy)")
    valid_every_minutes: float = _key(0.0, "also log the validation loss this often (0 = at epoch ends only)")
    log_every: int = _key(50, "updates between training records in log.jsonl")
    tensorboard: bool = _key(True, "the log's numbers also as TensorBoard event files in RUN/tensorboard/")
    max_nonfinite: int = _key(10, "updates in a row with a NaN/inf loss (each skipped) before training stops")
    average_last: int = _key(0, "keep the last N epoch checkpoints and write their mean, checkpoint_avg.pt (0 = off)")


@dataclass(frozen=True)
class DecodeConfig:
    beam: int = _key(5, "beam size of translate, evaluate and serve")
    length_penalty: float = _key(1.0, "hypothesis score = log-prob / length ** length_penalty")
    max_len_a: float = _key(1.5, "output length limit = a * source length + b (subwords)")
    max_len_b: int = _key(10, "the b of that limit")
    min_len: int = _key(0, "no output ends with fewer tokens (eos excluded), unless its limit is lower")
    max_tokens: int = _key(4096, "inference batch budget (padded source slots)")
    nbest: int = _key(1, "hypotheses per input line (<= beam; translate --nbest)")
    amp: Literal["auto", "off", "bf16", "fp16"] = _key(
        "off",
        "decoding precision: off (float32: a line's translation does not depend on its batch) | bf16 | fp16 | "
        "auto (as train.amp): faster where the hardware has them, within a measured tolerance",
    )


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def describe(cfg: Config, source: str = "") -> str:
    """`cfg` as YAML with every key, its value and its meaning (the text `train --print-config`
    prints); a file that says where the values came from (`source`) first. It loads back to `cfg`."""
    lines = [f"# {source}" if source else "# the defaults", "# every key: its value and its meaning", ""]
    values = cfg.to_dict()
    for section in dataclasses.fields(cfg):
        lines.append(f"{section.name}:")
        for key in dataclasses.fields(getattr(cfg, section.name)):
            value = yaml.safe_dump(values[section.name][key.name], default_flow_style=True, width=10_000)
            item = f"  {key.name}: {value.removesuffix(chr(10)).removesuffix(chr(10) + '...')}"
            lines.append(f"{item:<30}  # {key.metadata['meaning']}")
        lines.append("")
    return "\n".join(lines)


# Numeric ranges: key -> (lowest, highest); None = unbounded on that side.
_RANGES: dict[str, tuple[float | None, float | None]] = {
    "data.max_len": (1, None),
    "data.num_proc": (0, None),
    "tokenizer.vocab_size": (16, None),
    "tokenizer.character_coverage": (0.9, 1.0),
    "batching.max_tokens": (1, None),
    "batching.batch_cost": (0.0, None),
    "batching.multiple_of": (1, None),
    "batching.batch_size": (1, None),
    "batching.pool_batches": (1, None),
    "batching.row_tokens": (1, None),
    "tokenizer.sampling_alpha": (0.0, 1.0),
    "model.d_model": (1, None),
    "model.heads": (1, None),
    "model.encoder_layers": (1, None),
    "model.decoder_layers": (1, None),
    "model.ffn_dim": (1, None),
    "model.dropout": (0.0, 0.99),
    "model.attention_dropout": (0.0, 0.99),
    "model.activation_dropout": (0.0, 0.99),
    "model.max_positions": (1, None),
    "model.rnn_hidden": (1, None),
    "model.rnn_layers": (1, None),
    "loss.label_smoothing": (0.0, 0.99),
    "train.lr": (0.0, None),
    "train.warmup_steps": (0, None),
    "train.clip_norm": (0.0, None),
    "train.accumulate": (1, None),
    "train.max_epochs": (1, None),
    "train.max_minutes": (0.0, None),
    "train.max_updates": (0, None),
    "train.patience": (0, None),
    "train.valid_beam": (1, None),
    "train.valid_every_minutes": (0.0, None),
    "train.log_every": (1, None),
    "train.max_nonfinite": (1, None),
    "train.average_last": (0, None),
    "decode.beam": (1, None),
    "decode.length_penalty": (0.0, None),
    "decode.max_len_a": (0.0, None),
    "decode.max_len_b": (0, None),
    "decode.min_len": (0, None),
    "decode.max_tokens": (1, None),
    "decode.nbest": (1, None),
}


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (a file, or a shipped config's name; the defaults when `path` is None)
    and apply `key=value` overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = config_path(path)
        with open(path, encoding="utf-8") as f:
            try:
                raw = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{path} is not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return config_from_dict(raw, overrides)


def config_from_dict(raw: dict[str, Any], overrides: list[str] = ()) -> Config:
    """Validate a config given as nested dicts (a parsed YAML file, or a checkpoint's copy)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        _apply_override(raw, item)
    cfg = _build(Config, raw, prefix="")
    _check_rules(cfg)
    return cfg


def decode_with(decode: DecodeConfig, overrides: dict[str, Any], names: dict[str, str] | None = None) -> DecodeConfig:
    """`decode` with the `overrides` that are not None, through the same checks as the decode.*
    keys of a config file; an error names the override by `names[key]` (a command-line flag)
    when given."""
    names = names or {}
    hints = typing.get_type_hints(DecodeConfig)
    values = dataclasses.asdict(decode)
    for key, value in overrides.items():
        if value is not None:
            try:
                values[key] = _coerce(value, hints[key], f"decode.{key}")
            except ConfigError as e:
                raise ConfigError(f"{names[key]} {value}: {e}" if key in names else str(e)) from None
    result = DecodeConfig(**values)
    _check_decode(result, names)
    return result


def _check_decode(d: DecodeConfig, names: dict[str, str]) -> None:
    if d.nbest > d.beam:
        nbest, beam = names.get("nbest", "decode.nbest"), names.get("beam", "decode.beam")
        raise ConfigError(f"{nbest} ({d.nbest}) must not exceed {beam} ({d.beam}): a beam keeps that many hypotheses")


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, value = item.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise ConfigError(f"override {item!r} must look like section.key=value")
    section = raw.setdefault(parts[0], {})
    if not isinstance(section, dict):
        raise ConfigError(f"override {item!r}: {parts[0]} is not a section")
    section[parts[1]] = yaml.safe_load(value) if value.strip() else ""


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "the config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            choices = ", ".join(fields)
            raise ConfigError(f"unknown key '{prefix}{key}'{hint} (valid keys: {choices})")
    values = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, prefix=f"{prefix}{name}.")
        else:
            values[name] = _coerce(value, hint, f"{prefix}{name}")
    return cls(**values)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value is False and "off" in choices:  # YAML 1.1 reads an unquoted `off` as false
            value = "off"
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if origin is tuple:
        kinds = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(kinds):
            raise ConfigError(f"{key} must be a list of {len(kinds)} values; got {value!r}")
        return tuple(_coerce(v, k, f"{key}[{i}]") for i, (v, k) in enumerate(zip(value, kinds)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping; got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported config type for {key}")
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, hint)
    if not ok:
        raise ConfigError(f"{key} must be of type {hint.__name__}; got {value!r}")
    low, high = _RANGES.get(key, (None, None))
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ConfigError(f"{key} must lie in {bounds}; got {value!r}")
    return value


def _check_rules(cfg: Config) -> None:
    _check_decode(cfg.decode, {})
    m = cfg.model
    if m.d_model % m.heads:
        raise ConfigError(f"model.d_model ({m.d_model}) must be divisible by model.heads ({m.heads})")
    if m.type == "lstm" and m.rnn_layers != m.decoder_layers:
        raise ConfigError(
            f"model.type lstm: model.decoder_layers ({m.decoder_layers}) must equal model.rnn_layers "
            f"({m.rnn_layers}): each decoder layer starts from the matching encoder layer's final state"
        )
    if m.type == "hybrid" and m.encoder_padding == "padded":
        raise ConfigError(
            "model.type hybrid needs model.encoder_padding masked, packed or unrolled: with 'padded' the "
            "LSTM reads pads and changes the outputs the Transformer layers attend to"
        )
    b = cfg.batching
    if b.strategy == "packed_rows" and m.type != "transformer":
        raise ConfigError(
            f"batching.strategy packed_rows needs model.type transformer (got {m.type}): only its attention "
            "can keep the sentences that share a row apart"
        )
    if b.strategy == "packed_rows" and b.pad_side == "pre":
        raise ConfigError("batching.pad_side pre does not apply to packed_rows, which pads only the end of a row")
    _check_budget(cfg)
    _check_positions(cfg)
    t = cfg.train
    if t.schedule == "linear" and t.max_minutes <= 0 and t.max_updates <= 0:
        raise ConfigError(
            "train.schedule linear falls to 0 at the end of the budget, and this config has none: set "
            "train.max_minutes or train.max_updates, or use train.schedule: inverse_sqrt"
        )
    if cfg.data.src_lang == cfg.data.tgt_lang:
        raise ConfigError("data.src_lang and data.tgt_lang must differ")
    if not cfg.tokenizer.joint:
        raise ConfigError("tokenizer.joint: false is not supported: tied embeddings need one vocabulary")
    if cfg.data.corpus in ("text", "tsv", "hf"):
        missing = [s for s in (cfg.data.train_split, cfg.data.valid_split) if s not in cfg.data.paths]
        if missing:
            raise ConfigError(
                f"data.corpus is {cfg.data.corpus!r}: data.paths needs an entry for split(s) {', '.join(missing)}"
            )
    if cfg.data.corpus == "hf" and not cfg.data.hf_path:
        raise ConfigError("data.corpus is 'hf': set data.hf_path (a hub name, or 'json', 'csv', ...)")


def _check_positions(cfg: Config) -> None:
    """Every training pair data.max_len admits must fit the model (`specials.model_limits`): a
    Transformer's position table holds a source and its end token, and bos and the target."""
    for side, limit in zip(("source", "target"), model_limits(cfg.model.type, cfg.model.max_positions)):
        if limit is not None and cfg.data.max_len > limit:
            raise ConfigError(
                f"data.max_len {cfg.data.max_len} is longer than the {side} a {cfg.model.type} with "
                f"model.max_positions {cfg.model.max_positions} can hold ({limit} subwords and the end token): "
                f"set data.max_len to at most {limit}, or model.max_positions to at least {cfg.data.max_len + 1}"
            )


def _check_budget(cfg: Config) -> None:
    """The longest pair data.max_len admits must fit one batch (tokens) or one row (packed_rows)."""
    b, longest = cfg.batching, max(with_specials(cfg.data.max_len, cfg.data.max_len))
    if b.strategy == "tokens":
        check_fits(longest, b.max_tokens, "batching.max_tokens")
    elif b.strategy == "packed_rows":
        check_fits(longest, b.row_tokens, "batching.row_tokens")


def check_fits(longest: int, budget: int, setting: str) -> None:
    """Raise `ConfigError` unless a sentence of `longest` slots (specials included) fits `setting`,
    a budget of `budget` slots per batch or row and side."""
    if longest > budget:
        raise ConfigError(
            f"a sentence of {longest} tokens (eos or bos included) does not fit {setting}={budget}: "
            f"raise {setting} or lower data.max_len"
        )


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
