"""Config: presets, dotted overrides, strict keys, ranges."""

import pytest

from vqvae.core.config import build, load_config, parse_overrides, preset_for, presets, read_yaml
from vqvae.core.errors import ConfigError


def test_every_preset_builds():
    for name in presets():
        if name.startswith("prior-"):  # code-map sizes come from the tokenizer
            cfg = load_config(name, None, {"model": {"height": 7, "width": 7}})
            assert cfg.arch == read_yaml(name)["arch"] and cfg.model.seq_len == 49 * cfg.model.num_codebooks
        elif name == "dalle":  # text and image sizes come from the tokenizers
            cfg = load_config(name, None, {"model": {"text_vocab": 1100, "height": 8, "width": 8}})
            cfg.validate()
            assert cfg.arch == "dalle" and cfg.model.seq_len == 16 + 64
        elif name == "clip":  # the text vocabulary comes from the run's BPE
            cfg = load_config(name, None, {"model": {"text_vocab": 300}})
            assert cfg.arch == "clip" and cfg.model.text_len == 16
        else:
            cfg = load_config(name, None)
            assert cfg.arch == (read_yaml(name).get("arch") or "vqvae")


def test_dataset_picks_its_preset():
    assert preset_for("fashion-mnist") == "fashion-mnist"
    assert preset_for("FMNIST") == "fashion-mnist"
    assert preset_for("cifar10") == "cifar10"
    assert preset_for("/some/folder") == "default"
    cfg = load_config(None, "cifar10")
    assert (cfg.model.hidden, cfg.model.codebook_size, cfg.model.likelihood, cfg.train.lr, cfg.train.batch_size) == (256, 512, "categorical", 2e-4, 128)


def test_dotted_overrides_are_typed():
    cfg = load_config("tiny", None, ["--train.lr=3e-4", "--model.codebook_size=64", "--model.kmeans_init=false", "--data.root=/x"])
    assert cfg.train.lr == 3e-4 and isinstance(cfg.train.lr, float)
    assert cfg.model.codebook_size == 64 and cfg.model.kmeans_init is False and cfg.data.root == "/x"
    assert parse_overrides(["model.quantizer=vq"]) == {"model": {"quantizer": "vq"}}


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown config key train\.lrr; valid keys: .*train\.lr"):
        load_config("tiny", None, ["--train.lrr=1"])
    with pytest.raises(ConfigError, match="unknown config section"):
        build({"optim": {}})


@pytest.mark.parametrize("item,msg", [
    ("--train.lr=5", "train.lr"),
    ("--train.batch_size=0", "batch_size"),
    ("--model.decay=1.5", "decay"),
    ("--model.quantizer=foo", "quantizer"),
    ("--train.steps=abc", "expects int"),
    ("--model.likelihood=laplace", "likelihood"),
    ("--train.amp=fp8", "amp"),
])
def test_out_of_range_values(item, msg):
    with pytest.raises(ConfigError, match=msg):
        load_config("tiny", None, [item])


def test_malformed_override():
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides(["lr=3"])


def test_missing_config_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nope.yaml", None)
