import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mtapp.config import (
    CONFIG_DIR,
    DEFAULT_CONFIG,
    Config,
    ConfigError,
    config_from_dict,
    config_path,
    load_config,
    shipped_configs,
)
from mtapp.train import main as train_main

CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_print_config_lists_every_key_with_its_meaning_and_loads_back(path, capsys):
    assert train_main(["--print-config", "--config", str(path), "--set", "train.lr=0.002"]) == 0
    text = capsys.readouterr().out
    cfg = load_config(path, ["train.lr=0.002"])
    assert config_from_dict(yaml.safe_load(text)) == cfg  # the printed YAML is the resolved config
    assert text.startswith(f"# config {path} --set train.lr=0.002\n")
    blocks = {block.split(":", 1)[0]: block for block in text.split("\n\n") if not block.startswith("#")}
    for section, values in cfg.to_dict().items():
        lines = blocks[section].splitlines()[1:]  # the section's own lines: keys repeat across sections
        assert [ln.split(":", 1)[0].strip() for ln in lines] == list(values), f"{section}: keys missing or extra"
        for line in lines:
            assert len(line.partition("  # ")[2]) > 3, f"{section}: a key without its meaning: {line!r}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_a_shipped_config_states_only_what_it_chooses(path):
    stated = yaml.safe_load(path.read_text())
    defaults = Config().to_dict()
    for section, values in stated.items():
        for key, value in values.items():
            # the languages are stated in every file, so that a reader sees the direction
            if (section, key) not in (("data", "src_lang"), ("data", "tgt_lang")):
                assert value != defaults[section][key], f"{path.name} restates the default {section}.{key}"
        if isinstance(values, dict):  # every choice says why, but the languages, which say themselves
            for line in path.read_text().splitlines():
                if line.startswith("  ") and not line.strip().startswith(("src_lang", "tgt_lang")):
                    assert "  # " in line, f"{path.name}: {line.strip()!r} does not say why"
    assert len(path.read_text().splitlines()) <= 20


def test_the_defaults_are_the_base_configs_and_the_default_config_trains_a_smaller_transformer():
    assert load_config("multi30k_de_en_transformer_base") == Config() == load_config(None)
    default = load_config(DEFAULT_CONFIG)
    assert default.model.type == "transformer" and default.model.d_model < Config().model.d_model


def test_each_en_de_config_is_its_de_en_twin_with_the_languages_swapped():
    for twin in CONFIG_DIR.glob("multi30k_en_de_*.yaml"):
        en_de, de_en = load_config(twin).to_dict(), load_config(twin.name.replace("en_de", "de_en")).to_dict()
        assert (en_de["data"].pop("src_lang"), en_de["data"].pop("tgt_lang")) == ("en", "de")
        assert (de_en["data"].pop("src_lang"), de_en["data"].pop("tgt_lang")) == ("de", "en")
        assert en_de == de_en, twin.name


def test_loading_a_config_imports_neither_torch_nor_pyarrow():
    code = (
        "import sys, mtapp.config as c; c.load_config('multi30k_de_en_lstm'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pyarrow', 'sentencepiece', 'numpy'}))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "[]"


def test_a_shipped_config_is_found_by_its_name_and_any_file_by_its_path(tmp_path, monkeypatch):
    assert len(CONFIGS) == 8 and DEFAULT_CONFIG in CONFIGS  # configs/ in the source tree
    lstm = CONFIG_DIR / "multi30k_de_en_lstm.yaml"
    assert config_path("multi30k_de_en_lstm") == config_path("multi30k_de_en_lstm.yaml") == lstm
    assert load_config("multi30k_de_en_lstm").model.type == "lstm"
    own = tmp_path / "own.yaml"
    own.write_text("model:\n  d_model: 64\n")
    assert config_path(own) == own
    (tmp_path / "multi30k_de_en_lstm.yaml").write_text(own.read_text())
    monkeypatch.chdir(tmp_path)  # a file of that name in the working directory comes first
    assert config_path("multi30k_de_en_lstm.yaml") == Path("multi30k_de_en_lstm.yaml")
    assert config_path("multi30k_de_en_lstm") == lstm


def test_an_unknown_config_name_lists_the_shipped_ones():
    names = ", ".join(shipped_configs())
    assert "multi30k_de_en_transformer" in names
    with pytest.raises(ConfigError, match=rf"no config named 'multi30k_de_en_gru': the shipped configs are {names};"):
        load_config("multi30k_de_en_gru")
    with pytest.raises(ConfigError, match=rf"config file no/such\.yaml does not exist \(the shipped configs.*{names}"):
        config_path("no/such.yaml")


def test_unknown_key_names_the_key_and_the_closest_valid_one():
    with pytest.raises(ConfigError, match=r"unknown key 'train\.warmup_step'; did you mean 'train\.warmup_steps'"):
        config_from_dict({"train": {"warmup_step": 100}})
    with pytest.raises(ConfigError, match=r"unknown key 'train\.zzz' \(valid keys: lr, warmup_steps"):
        config_from_dict({"train": {"zzz": 1}})
    with pytest.raises(ConfigError, match=r"unknown key 'model\.d_modle'; did you mean 'model\.d_model'"):
        config_from_dict({"model": {"d_modle": 128}})
    with pytest.raises(ConfigError, match=r"unknown key 'trian'; did you mean 'train'"):
        config_from_dict({"trian": {}})


@pytest.mark.parametrize(
    "raw, pattern",
    [
        ({"model": {"d_model": "big"}}, r"model\.d_model must be of type int"),
        ({"model": {"heads": 3}}, r"divisible by model\.heads"),
        ({"model": {"dropout": 1.5}}, r"model\.dropout must lie in"),
        ({"batching": {"pad_side": "left"}}, r"batching\.pad_side must be one of post, pre"),
        ({"train": {"betas": [0.9]}}, r"train\.betas must be a list of 2"),
        ({"data": {"src_lang": "en", "tgt_lang": "en"}}, r"must differ"),
        ({"data": {"corpus": "text"}}, r"data\.paths needs an entry"),
        ({"train": {"use_amp": True}}, r"unknown key 'train\.use_amp'.*did you mean 'train\.amp'"),
        ({"model": {"type": "lstm", "rnn_layers": 2, "decoder_layers": 3}}, r"must equal model\.rnn_layers"),
        ({"model": {"type": "hybrid", "encoder_padding": "padded"}}, r"hybrid needs model\.encoder_padding"),
        ({"model": {"encoder_padding": "sorted"}}, r"encoder_padding must be one of padded, masked, packed"),
        (
            {"train": {"schedule": "linear", "max_minutes": 0}},
            r"train\.schedule linear falls to 0 at the end of the budget, and this config has none: set train\.max_min",
        ),
        (
            {"model": {"max_positions": 64}, "data": {"max_len": 80}},
            r"data\.max_len 80 is longer than the source a transformer with model\.max_positions 64 can hold \(63",
        ),
        (
            {"model": {"type": "hybrid", "max_positions": 64, "encoder_padding": "packed"}, "data": {"max_len": 80}},
            r"target a hybrid",
        ),
    ],
)
def test_invalid_values_are_rejected_with_the_key(raw, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config_from_dict(raw)


def test_overrides_are_typed_and_applied(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  d_model: 128\n")
    cfg = load_config(path, ["train.lr=0.002", "batching.pad_side=pre", "train.betas=[0.8, 0.9]"])
    assert cfg.model.d_model == 128
    assert cfg.train.lr == 0.002
    assert cfg.batching.pad_side == "pre"
    assert cfg.train.betas == (0.8, 0.9)
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(path, ["lr=0.1"])


def test_resolved_config_round_trips():
    cfg = config_from_dict({"model": {"d_model": 128, "heads": 8}, "train": {"betas": [0.9, 0.99]}})
    assert config_from_dict(cfg.to_dict()) == cfg
    assert Config() == config_from_dict({})


def test_an_unquoted_off_means_off_and_true_is_still_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("decode:\n  amp: off\ntrain:\n  amp: off\n")  # YAML 1.1 reads false
    cfg = load_config(tmp_path / "c.yaml", ["decode.amp=off"])
    assert (cfg.decode.amp, cfg.train.amp) == ("off", "off")
    with pytest.raises(ConfigError, match=r"decode\.amp must be one of auto, off, bf16, fp16; got True"):
        load_config(None, ["decode.amp=on"])


def test_decode_overrides_are_checked_as_the_config_keys_are_and_name_the_flag():
    from mtapp.config import DecodeConfig, decode_with

    base = DecodeConfig(beam=4)
    assert decode_with(base, {"beam": None, "nbest": 3}) == DecodeConfig(beam=4, nbest=3)
    with pytest.raises(ConfigError, match=r"^--beam 0: decode\.beam must lie in"):
        decode_with(base, {"beam": 0}, {"beam": "--beam"})
    with pytest.raises(ConfigError, match=r"decode\.nbest \(5\) must not exceed decode\.beam \(4\)"):
        decode_with(base, {"nbest": 5})
    with pytest.raises(ConfigError, match=r"decode\.nbest \(2\) must not exceed decode\.beam \(1\)"):
        config_from_dict({"decode": {"beam": 1, "nbest": 2}})
