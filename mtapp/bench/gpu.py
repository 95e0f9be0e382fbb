"""`python -m mtapp.bench gpu` (what scripts/gpu_check.sh runs): proves mtapp's CUDA path and
measures it, stage by stage, within a wall-clock budget; it stops at the first stage that fails.

    python -m mtapp.bench gpu [--device cuda|cpu] [--minutes 8] [--out runs/gpu_check]

Stages: the machine; the default Transformer trained in bf16 with batching tokens, random and
packed_rows; PyTorch's nested (jagged) tensors probed on the device; the LSTM encoder modes
padded / masked / packed / unrolled with post- and pre-padding; fp16 with the gradient scaler;
torch.compile; beam-5 decoding of the test split in float32 and bf16 over several batch budgets
(lines whose translation changes); a two-process torchrun (NCCL) when there are two GPUs.
Every training stage goes through `Trainer`, every decode through `Translator`, as users run them.

`--device cuda` uses Multi30k (the data directory) and the configs' model sizes, the stages sized
to fit `--minutes`. `--device cpu` runs every stage at a tiny size (a synthetic corpus, a tiny
model: seconds), so that the check cannot rot where no GPU is. Writes OUT/gpu_check.json (every
figure, the machine, each stage's seconds or its error) and OUT/gpu_check.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from mtapp.bench import invariance, nested
from mtapp.bench.train import summarize
from mtapp.config import DEFAULT_CONFIG, Config, config_from_dict, config_path
from mtapp.data.prepare import PreparedData, prepare
from mtapp.data.synthetic import tiny_config, write_synthetic_corpus
from mtapp.models import build_model
from mtapp.progress import bar_settings
from mtapp.report.document import markdown_table
from mtapp.runtime import memory_policy, seed_everything, set_threads
from mtapp.trainer import build_trainer

LSTM_CONFIG = config_path("multi30k_de_en_lstm")
STRATEGIES = ("tokens", "random", "packed_rows")
LSTM_MODES = ("padded", "masked", "packed", "unrolled")
PAD_SIDES = ("post", "pre")


class CheckFailed(RuntimeError):
    """A stage found something that does not work."""


@dataclass(frozen=True)
class Plan:
    """How big each stage is: seconds of training per variant, updates of the short stages, the
    decoding budgets and lines."""

    transformer_seconds: float
    lstm_seconds: float
    few_updates: int
    budgets: tuple[int, ...]
    test_lines: int | None  # None = the whole test split

    @classmethod
    def for_device(cls, device: torch.device, minutes: float) -> Plan:
        if device.type == "cpu":  # tiny: the same stages in seconds
            return cls(transformer_seconds=2.0, lstm_seconds=1.0, few_updates=4, budgets=(1, 64, 4096), test_lines=None)
        # Of an 8-minute budget: ~3 x 34 s of Transformer, 8 x 8 s of LSTM, the rest for data
        # preparation, validation after each run, compilation and decoding (estimates, not measured
        # on a GPU yet: each stage's seconds are in the summary).
        budget = minutes * 60
        return cls(0.07 * budget, 0.016 * budget, few_updates=30, budgets=(1, 256, 8192), test_lines=None)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# ---- the machine ------------------------------------------------------------------------------
def environment(device: torch.device) -> dict:
    """Processor, torch, and for CUDA the GPUs, their memory, CUDA and cuDNN versions, bf16."""
    info = invariance.machine() | {"device": str(device)}
    if device.type == "cuda":
        check(torch.cuda.is_available(), "--device cuda: torch.cuda.is_available() is False (no GPU or no driver)")
        props = torch.cuda.get_device_properties(device)
        info |= {
            "gpu": props.name,
            "gpus": torch.cuda.device_count(),
            "gpu_memory_gb": props.total_memory / 1e9,
            "capability": f"{props.major}.{props.minor}",
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "bf16_supported": torch.cuda.is_bf16_supported(),
        }
        x = torch.ones(8, device=device)
        check(float(x.sum()) == 8.0, "a CUDA sum of eight ones is not 8")
    return info


# ---- training ---------------------------------------------------------------------------------
def base_config(path: Path, device: torch.device, out: Path, overrides: list[str]) -> Config:
    """A config file at full size (CUDA) or tiny on the synthetic corpus (CPU), with `overrides`."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if device.type == "cpu":
        tiny = tiny_config(out, batching={"max_tokens": 256, "row_tokens": 128}, train={"warmup_steps": 20})
        tiny["model"] |= {"d_model": 32, "ffn_dim": 64, "rnn_hidden": 16, "rnn_layers": 2}
        for section, values in tiny.items():
            raw.setdefault(section, {}).update(values)
    common = [f"train.device={device.type}", "train.patience=0", "train.max_epochs=100000", "train.max_minutes=0"]
    common += ["train.valid_every_minutes=0", "train.amp=bf16"]
    return config_from_dict(raw, common + overrides)


class Data:
    """Prepared data per (data, tokenizer) settings: the tokenizer is trained and the corpus encoded once."""

    def __init__(self):
        self.prepared: dict[str, PreparedData] = {}

    def __call__(self, cfg: Config) -> PreparedData:
        key = repr((cfg.data, cfg.tokenizer))
        if key not in self.prepared:
            self.prepared[key] = prepare(cfg)
        return self.prepared[key]


def train_run(cfg: Config, data: PreparedData, device: torch.device, run_dir: Path) -> dict:
    """Train through `build_trainer` (as `python -m mtapp.train` does); the run's figures, checked."""
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.train.seed)
    model = build_model(cfg.model, data.tokenizer.vocab_size, cfg.batching.pad_side)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    started = time.monotonic()
    trainer = build_trainer(cfg, run_dir, model, data, device)
    progress = trainer.fit()
    result = summarize(run_dir) | {"updates": progress.updates, "skipped_updates": progress.skipped}
    result |= {"stopped": progress.stopped, "wall_seconds": time.monotonic() - started}
    result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    result["grad_scale"] = trainer.scaler.get_scale() if trainer.scaler.is_enabled() else None
    where = {p.device.type for p in model.parameters()}
    check(where == {device.type}, f"{run_dir.name}: parameters ended on {where}, not {device.type}")
    check(progress.updates > 0, f"{run_dir.name}: no update was made ({progress.stopped})")
    check(math.isfinite(result["train_loss"]), f"{run_dir.name}: training loss {result['train_loss']}")
    del trainer, model
    gc.collect()
    return result


def timed(seconds: float) -> list[str]:
    return [f"train.max_minutes={seconds / 60:.5f}"]


def transformer_stage(ctx: Context) -> dict:
    runs = {}
    for strategy in STRATEGIES:
        overrides = [f"batching.strategy={strategy}", *timed(ctx.plan.transformer_seconds)]
        cfg = base_config(DEFAULT_CONFIG, ctx.device, ctx.out, overrides)
        runs[strategy] = train_run(cfg, ctx.data(cfg), ctx.device, ctx.out / f"transformer-{strategy}")
        ctx.progress(f"transformer {strategy}", runs[strategy])
    efficiency = {s: r["padding_efficiency"] for s, r in runs.items()}
    check(
        efficiency["packed_rows"] >= efficiency["random"],
        f"packed_rows pads more than random batches: padding efficiency {efficiency}",
    )
    return runs


def nested_stage(ctx: Context) -> dict:
    """Whether nested jagged tensors run the Transformer's operations on this device (a finding, not
    a failure: mtapp's padding-free path is packed_rows)."""
    verdicts = nested.probe(ctx.device)
    return {"operations": verdicts, "all_work": all(v.startswith("works") for v in verdicts.values())}


def lstm_stage(ctx: Context) -> dict:
    runs = {}
    for mode in LSTM_MODES:
        for side in PAD_SIDES:
            overrides = [f"model.encoder_padding={mode}", f"batching.pad_side={side}"]
            cfg = base_config(LSTM_CONFIG, ctx.device, ctx.out, overrides + timed(ctx.plan.lstm_seconds))
            name = f"{mode}-{side}"
            runs[name] = train_run(cfg, ctx.data(cfg), ctx.device, ctx.out / f"lstm-{name}")
            ctx.progress(f"lstm {name}", runs[name])
    return runs


def fp16_stage(ctx: Context) -> dict:
    """fp16 autocast with the gradient scaler for a few updates: the scale is finite and positive."""
    cfg = base_config(
        DEFAULT_CONFIG, ctx.device, ctx.out, ["train.amp=fp16", f"train.max_updates={ctx.plan.few_updates}"]
    )
    result = train_run(cfg, ctx.data(cfg), ctx.device, ctx.out / "fp16")
    check(result["grad_scale"] is not None, "fp16: the gradient scaler was not enabled")
    check(0 < result["grad_scale"] < math.inf, f"fp16: gradient scale {result['grad_scale']}")
    check(result["updates"] == ctx.plan.few_updates, f"fp16: {result['updates']} updates, not {ctx.plan.few_updates}")
    return result


def compile_stage(ctx: Context) -> dict:
    """torch.compile (train.compile) for a few updates; the first ones include compilation. On the
    CPU the backend is eager (graph capture only, no generated kernels: Inductor takes
    minutes on two cores); on CUDA Inductor."""
    backend = "inductor" if ctx.device.type == "cuda" else "eager"
    overrides = ["train.compile=true", f"train.compile_backend={backend}", f"train.max_updates={ctx.plan.few_updates}"]
    cfg = base_config(DEFAULT_CONFIG, ctx.device, ctx.out, overrides)
    result = train_run(cfg, ctx.data(cfg), ctx.device, ctx.out / "compile") | {"backend": backend}
    check(
        result["updates"] == ctx.plan.few_updates, f"compile: {result['updates']} updates, not {ctx.plan.few_updates}"
    )
    return result


def decode_stage(ctx: Context) -> dict:
    """Beam-5 decoding of the test split with the `tokens` Transformer, float32 and bf16, once per
    batch budget: the lines whose translation changes with the budget, and each decode's seconds."""
    run = ctx.out / "transformer-tokens"
    cfg = invariance.run_config(run)
    lines = invariance.source_lines(cfg, [cfg.data.test_split], ctx.plan.test_lines)
    grid = {"amps": ["off", "bf16"], "beams": [5], "budgets": list(ctx.plan.budgets)}
    with tqdm(total=len(grid["amps"]) * len(grid["budgets"]), desc="decoding", unit="decode", **bar_settings()) as bar:
        results = invariance.measure_run(run, cfg, lines, grid, bar, ctx.device.type)
    for r in results:
        check(r["lines"] == len(lines), f"decoding ({r['precision']}) gave {r['lines']} outputs for {len(lines)} lines")
    return {"split": cfg.data.test_split, "budgets": list(ctx.plan.budgets), "results": results}


def torchrun_stage(ctx: Context) -> dict:
    """Two processes, one GPU each (NCCL), a few updates through `python -m mtapp.train`."""
    gpus = torch.cuda.device_count() if ctx.device.type == "cuda" else 0
    if gpus < 2:
        return {"skipped": f"{gpus} GPU(s): a two-process NCCL run needs two (gloo on the CPU is in tests)"}
    run_dir = ctx.out / "torchrun"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "mtapp.train"]
    cmd += ["--run-dir", str(run_dir), "--set", f"train.max_updates={ctx.plan.few_updates}", "--set", "train.amp=bf16"]
    started = time.monotonic()
    with open(ctx.out / "torchrun.log", "w") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    check(code == 0, f"torchrun exited {code}; see {ctx.out / 'torchrun.log'}")
    return summarize(run_dir) | {"wall_seconds": time.monotonic() - started}


STAGES = {
    "transformer": transformer_stage,
    "nested": nested_stage,
    "lstm": lstm_stage,
    "fp16": fp16_stage,
    "compile": compile_stage,
    "decode": decode_stage,
    "torchrun": torchrun_stage,
}


@dataclass
class Context:
    device: torch.device
    out: Path
    plan: Plan
    data: Data

    @staticmethod
    def progress(name: str, run: dict) -> None:
        print(
            f"    {name}: {run['tgt_tokens_per_s']:.0f} target tokens/s, {run['updates']} updates, "
            f"loss {run['train_loss']:.3f}",
            flush=True,
        )


# ---- the summary ------------------------------------------------------------------------------
def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def training_table(runs: dict[str, dict], first: str) -> str:
    columns = [first, "real target tokens/s", "peak GPU MB", "padding efficiency", "updates", "train loss"]
    columns += ["valid loss", "valid BLEU (greedy)"]
    rows = [
        [name, f"{r['tgt_tokens_per_s']:,.0f}", _mb(r["peak_gpu_mb"]), f"{r['padding_efficiency']:.3f}", r["updates"]]
        + [f"{r['train_loss']:.3f}", f"{r['valid_loss']:.3f}", f"{r['valid_bleu']:.2f}"]
        for name, r in runs.items()
    ]
    return markdown_table(columns, rows)


def markdown(payload: dict) -> str:
    m, stages = payload["machine"], payload["stages"]
    lines = [f"# mtapp GPU check ({payload['device']})", ""]
    gpu = f"{m['gpu']} ({m['gpu_memory_gb']:.0f} GB, CUDA {m['cuda']}, cuDNN {m['cudnn']}), " if "gpu" in m else ""
    lines += [f"{gpu}{invariance.machine_line(m)}; size {payload['size']}, budget {payload['minutes']:g} min", ""]
    status = [[name, s["status"], f"{s['seconds']:.1f}", s.get("error", "")] for name, s in stages.items()]
    lines += [markdown_table(["stage", "status", "seconds", "error"], status), ""]
    result = {name: s.get("result") for name, s in stages.items()}
    if result.get("transformer"):
        lines += ["## Transformer, bf16, per batching strategy", "", training_table(result["transformer"], "strategy")]
    if result.get("nested"):
        lines += ["", "## Nested (jagged) tensors", ""]
        lines += [f"- {op}: {verdict}" for op, verdict in result["nested"]["operations"].items()]
    if result.get("lstm"):
        lines += ["", "## LSTM encoder modes, bf16", "", training_table(result["lstm"], "mode-pad side")]
    short = {name: result[name] for name in ("fp16", "compile") if result.get(name)}
    if short:
        lines += ["", "## fp16 with the gradient scaler; torch.compile", "", training_table(short, "stage")]
        if "fp16" in short:
            lines += [
                "",
                f"fp16: final gradient scale {short['fp16']['grad_scale']:g}, "
                f"{short['fp16']['skipped_updates']} update(s) skipped as non-finite",
            ]
        if "compile" in short:
            lines += [
                f"compile: {short['compile']['wall_seconds']:.1f} s for {short['compile']['updates']} updates "
                "(compilation included)"
            ]
    if result.get("decode"):
        d = result["decode"]
        lines += ["", f"## Beam-5 decoding of {d['split']}: lines that change with the batch budget", ""]
        lines += [invariance.table(d["results"], d["budgets"])]
    if result.get("torchrun"):
        lines += ["", "## torchrun", "", json.dumps(result["torchrun"].get("skipped") or result["torchrun"])]
    return "\n".join(lines) + "\n"


def write(payload: dict, out: Path) -> None:
    (out / "gpu_check.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown(payload))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtapp.bench gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: every stage at a tiny size")
    p.add_argument("--minutes", type=float, default=8.0, help="wall-clock budget the stages are sized to (cuda)")
    p.add_argument("--out", type=Path, default=Path("runs/gpu_check"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    set_threads()
    memory_policy()
    started = time.monotonic()
    payload = {"device": args.device, "size": "tiny" if device.type == "cpu" else "full", "minutes": args.minutes}
    payload |= {"command": [sys.executable, "-m", "mtapp.bench", "gpu", *(argv or sys.argv[1:])], "stages": {}}
    try:
        payload["machine"] = environment(device)
    except Exception as e:
        print(f"gpu check FAILED at the machine: {e}", file=sys.stderr)
        return 1
    if device.type == "cpu":
        write_synthetic_corpus(args.out)
    ctx = Context(device, args.out, Plan.for_device(device, args.minutes), Data())
    payload["plan"] = vars(ctx.plan)
    for name, stage in STAGES.items():
        print(f"[{name}] ...", flush=True)
        tick = time.monotonic()
        try:
            result = stage(ctx)
        except Exception as e:  # the first thing that does not work ends the check, loudly
            payload["stages"][name] = {"status": "FAILED", "seconds": time.monotonic() - tick, "error": repr(e)}
            payload["stages"][name]["traceback"] = traceback.format_exc()
            payload["seconds"] = time.monotonic() - started
            write(payload, args.out)
            traceback.print_exc()
            print(
                f"gpu check FAILED at stage {name}: {e} (summary so far: {args.out / 'gpu_check.md'})", file=sys.stderr
            )
            return 1
        status = "skipped" if isinstance(result, dict) and "skipped" in result else "ok"
        payload["stages"][name] = {"status": status, "seconds": time.monotonic() - tick, "result": result}
        print(f"[{name}] {status} in {payload['stages'][name]['seconds']:.1f} s", flush=True)
    payload["seconds"] = time.monotonic() - started
    payload["within_budget"] = payload["seconds"] <= args.minutes * 60
    write(payload, args.out)
    print(markdown(payload))
    print(f"gpu check passed in {payload['seconds']:.0f} s; {args.out / 'gpu_check.json'}, {args.out / 'gpu_check.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
