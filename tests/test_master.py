"""bf16-pure training: float32 master weights (`mtapp.master`), its checkpoints, where it is refused."""

import copy

import pytest
import torch

from mtapp import runtime
from mtapp.checkpoint import load_checkpoint
from mtapp.config import config_from_dict
from mtapp.data.prepare import prepare
from mtapp.data.synthetic import write_synthetic_corpus
from mtapp.master import MasterAdam
from mtapp.models import build_model
from mtapp.trainer import build_trainer
from mtapp.translator import Translator
from tests.synthetic import tiny_config

LR = 1e-3


def _net(seed: int = 0) -> torch.nn.Module:
    """A float32 net whose weights bf16 represents exactly (as a bf16 model's masters start)."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.to(torch.bfloat16))
    return net


def _steps(reference: torch.nn.Module, stepped: list[tuple[torch.nn.Module, torch.optim.Optimizer]], n: int) -> None:
    """n Adam steps of `reference` (float32) and of each (model, optimizer) in `stepped`, all on the
    reference's gradients (rounded to bf16 for a bf16 model): the optimizers alone differ."""
    ref_opt = torch.optim.Adam(reference.parameters(), lr=LR)
    torch.manual_seed(1)
    for _ in range(n):
        x = torch.randn(64, 16)
        reference.zero_grad()
        reference(x).pow(2).mean().backward()
        for model, opt in stepped:
            for p, r in zip(model.parameters(), reference.parameters(), strict=True):
                p.grad = r.grad.to(p.dtype)
            opt.step()
            opt.zero_grad()
        ref_opt.step()


def test_the_master_weight_step_equals_a_float32_step_within_bf16_rounding():
    reference = _net()
    master_model = copy.deepcopy(reference).to(torch.bfloat16)
    master = MasterAdam(master_model, lr=LR)
    plain_model = copy.deepcopy(reference).to(torch.bfloat16)  # what the masters are for: Adam on bf16 weights
    plain = torch.optim.Adam(plain_model.parameters(), lr=LR)
    start = [p.detach().clone() for p in reference.parameters()]
    _steps(reference, [(master_model, master), (plain_model, plain)], n=20)

    moved = max((r.detach() - s).abs().max().item() for r, s in zip(reference.parameters(), start))
    assert moved > 10 * LR  # the steps did move the weights
    master_error = max((m - r.detach()).abs().max().item() for m, r in zip(master.masters, reference.parameters()))
    plain_error = max(
        (p.detach().float() - r.detach()).abs().max().item()
        for p, r in zip(plain_model.parameters(), reference.parameters())
    )
    assert master_error < 0.02 * 20 * LR  # the bf16-rounded gradients change each update by well under 2%
    assert plain_error > 10 * master_error  # bf16 weights alone round updates away
    for p, m in zip(master_model.parameters(), master.masters, strict=True):
        assert p.dtype == torch.bfloat16 and torch.equal(p.detach(), m.to(torch.bfloat16))  # written back, rounded once
    assert all(p.grad is None for p in master_model.parameters())


def _pure_trainer(tmp_path, run, **train):
    raw = tiny_config(tmp_path, train={"amp": "bf16-pure", "max_epochs": 1, **train}, batching={"max_tokens": 128})
    cfg = config_from_dict(raw)
    data = prepare(cfg)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.tokenizer.vocab_size, cfg.batching.pad_side)
    return build_trainer(cfg, run, model, data, torch.device("cpu")), data


def test_a_bf16_pure_checkpoint_holds_the_float32_masters_and_translates_as_they_do(tmp_path):
    write_synthetic_corpus(tmp_path, train=400, valid=10, test=10)
    trainer, data = _pure_trainer(tmp_path, tmp_path / "run")
    assert next(trainer.model.parameters()).dtype == torch.bfloat16
    trainer.fit()
    assert trainer.progress.updates > 0

    path = tmp_path / "run" / "checkpoint_last.pt"
    saved = load_checkpoint(path)["model"]
    masters = trainer.optimizer.model_state_dict()
    assert saved.keys() == masters.keys()
    assert all(v.dtype == torch.float32 and torch.equal(v, masters[k]) for k, v in saved.items())
    # the masters themselves, not their bf16 copies: most weights are not representable in bf16
    assert any(not torch.equal(v, v.to(torch.bfloat16).float()) for v in saved.values())

    lines = data.valid_text.src
    from_checkpoint = Translator.from_content(load_checkpoint(path), path).translate(lines, beam=3)
    float32_model = build_model(trainer.cfg.model, data.tokenizer.vocab_size, trainer.cfg.batching.pad_side)
    float32_model.load_state_dict(masters)
    direct = Translator.of_model(float32_model, data.tokenizer, trainer.cfg.decode).translate(lines, beam=3)
    assert from_checkpoint == direct and any(from_checkpoint)


def test_resuming_a_bf16_pure_run_restores_the_float32_masters_not_their_bf16_copies(tmp_path):
    write_synthetic_corpus(tmp_path, train=400, valid=10, test=10)
    first, _ = _pure_trainer(tmp_path, tmp_path / "run", max_updates=15)
    first.fit()
    content = load_checkpoint(tmp_path / "run" / "checkpoint_last.pt")

    second, _ = _pure_trainer(tmp_path, tmp_path / "again")
    second.resume(content)
    restored = second.optimizer.model_state_dict()
    assert all(torch.equal(restored[k], v) for k, v in content["model"].items())
    assert second.progress.updates == 15


def test_bf16_pure_is_refused_on_a_gpu_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4")
    with pytest.raises(RuntimeError, match=r"train\.amp is 'bf16-pure' but Tesla T4 has no bf16 support.*auto"):
        runtime.pure_bf16(torch.device("cuda"), "bf16-pure")
    assert runtime.autocast_dtype(torch.device("cuda"), "bf16") == torch.bfloat16  # autocast is not refused
    assert runtime.autocast_dtype(torch.device("cpu"), "bf16-pure") is None  # no autocast: the model is bf16
