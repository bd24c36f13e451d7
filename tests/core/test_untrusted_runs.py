"""A run directory is data (issue 26): the paths it records are opened only as run directories, through the same
checks, and a command writes nothing but the outputs it is given. Fixture runs from tests/fixtures/runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vqvae.cli import main

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def world(tmp_path):
    """A prior whose config will name various places as its tokenizer, beside a real tokenizer and a classifier."""
    for name in ("pixelcnn", "tok", "clf", "scenes-tok"):
        shutil.copytree(RUNS / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a run")
    (tmp_path / "empty").mkdir()
    return tmp_path


def _point(prior: Path, where: str) -> None:
    cfg = json.loads((prior / "config.json").read_text())
    cfg["tokenizer"]["path"] = where
    (prior / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("where, msg", [
    ("{root}/notes.txt", "the tokenizer of prior {prior} is not at {root}/notes.txt"),
    ("{root}/nowhere", "the tokenizer of prior {prior} is not at {root}/nowhere"),
    ("{root}/empty", "the tokenizer of prior {prior} is not at {root}/empty"),
    ("{root}/pixelcnn", "is a pixelcnn run, not a tokenizer"),  # the prior itself
    ("{root}/clf", "is a classifier run, not a tokenizer"),
    ("{root}/scenes-tok", "is not the one prior"),  # a real tokenizer, but not the one it was trained on (fingerprint)
    ("/etc", "the tokenizer of prior {prior} is not at /etc"),
])
def test_a_recorded_tokenizer_path_is_opened_only_as_that_tokenizers_run(world, where, msg, capsys):
    prior = world / "pixelcnn"
    _point(prior, where.format(root=world))
    before = _tree(world)
    out = world / "out.png"
    capsys.readouterr()
    assert main(["sample", str(prior), "-n", "2", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and msg.format(root=world, prior=prior) in err, err
    assert _tree(world) == before  # nothing written anywhere: no output, no cache


def test_loading_a_run_never_unpickles(world, monkeypatch):
    import pickle

    from vqvae.core import checkpoint

    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    cfg, model = checkpoint.load_run(world / "tok")
    assert cfg.arch == "vqvae" and not model.training


def test_with_its_own_tokenizer_the_prior_writes_its_output_and_nothing_else(world, capsys):
    prior = world / "pixelcnn"
    _point(prior, str(world / "tok"))
    before = _tree(world)
    assert main(["sample", str(prior), "-n", "2", "-o", str(world / "out.png")]) == 0
    after = _tree(world)
    assert set(after) - set(before) == {"out.png"} and {k: after[k] for k in before} == before


def test_a_config_whose_model_cannot_be_allocated_is_a_one_line_error_and_other_errors_are_not_hidden(monkeypatch):
    from vqvae import registry
    from vqvae.core.config import build
    from vqvae.core.errors import ConfigError

    with pytest.raises(ConfigError, match="a vqvae model of this config cannot be built .*are its sizes sensible"):
        registry.create_model("vqvae", build({"arch": "vqvae", "model": {"in_channels": 1, "hidden": 2**39}}).model)
    arch = registry.get("vqvae")

    def broken(config):
        raise RuntimeError("size mismatch in a bug")

    monkeypatch.setitem(registry._ARCHS, "vqvae", type(arch)(**{**arch.__dict__, "model": broken}))  # noqa: SLF001
    with pytest.raises(RuntimeError, match="size mismatch in a bug"):  # a real bug surfaces as itself
        registry.create_model("vqvae", None)
