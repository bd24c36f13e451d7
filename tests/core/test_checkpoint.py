"""Run directories: atomic writes, strict loads, clear errors, never unpickling."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from tests.helpers import tiny_config
from vqvae.core import checkpoint, files
from vqvae.core.errors import CheckpointError
from vqvae.registry import create_model


@pytest.fixture
def run(tmp_path):
    cfg = tiny_config()
    cfg.model.in_channels = 1
    torch.manual_seed(0)
    model = create_model(cfg.arch, cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)).loss.backward()
    opt.step()
    checkpoint.save_config(tmp_path, cfg)
    checkpoint.save_model(tmp_path, model, step=1)
    checkpoint.save_train_state(tmp_path, model, opt, step=1, extra={"note": "x"})
    return tmp_path, cfg, model, opt


def test_round_trip(run):
    path, cfg, model, opt = run
    cfg2, model2 = checkpoint.load_run(path)
    assert cfg2.to_dict() == cfg.to_dict() and not model2.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, model2.state_dict()[k])
    fresh = create_model(cfg.arch, cfg.model)
    opt2 = torch.optim.Adam(fresh.parameters(), lr=5.0)
    step, extra = checkpoint.load_train_state(path, fresh, opt2)
    assert step == 1 and extra == {"note": "x"} and opt2.param_groups[0]["lr"] == 1e-3
    for pid, st in opt.state_dict()["state"].items():
        for name, v in st.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(opt2.state_dict()["state"][pid][name]))


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    p = tmp_path / "f.bin"
    files.atomic_write(p, b"old")

    def boom(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(p, b"new contents")
    assert p.read_bytes() == b"old" and [q.name for q in tmp_path.iterdir()] == ["f.bin"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "pickle", "empty"])
def test_damaged_model_file_is_a_clear_error(run, damage):
    path = run[0] / checkpoint.MODEL
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[: len(raw) // 2], "garbage": b"\x00" * 100, "empty": b"",
                      "pickle": pickle.dumps({"a": torch.zeros(2)})}[damage])
    with pytest.raises(CheckpointError, match="truncated or not a safetensors"):
        checkpoint.load_run(run[0])


def test_truncated_train_state_is_a_clear_error(run):
    path = run[0] / checkpoint.STATE
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoint.load_train_state(run[0], run[2], run[3])


def test_foreign_or_mismatched_runs(run, tmp_path_factory):
    path, cfg, model, _ = run
    other = tmp_path_factory.mktemp("other")
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load_run(other / "nope")
    with pytest.raises(CheckpointError, match="config.json is missing"):
        checkpoint.load_run(other)
    (other / "config.json").write_text(json.dumps({"model": {}}))
    with pytest.raises(CheckpointError, match="not a vqvae run config"):
        checkpoint.load_run(other)
    (other / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        checkpoint.load_run(other)
    raw = json.loads((path / "config.json").read_text())
    raw["model"]["codebook_size"] = 64  # weights no longer fit the config
    (path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="shape"):
        checkpoint.load_run(path)
    raw["model"]["bogus"] = 1
    (path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="bogus"):
        checkpoint.load_run(path)


def test_loading_never_unpickles(run, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("unpickling during load")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    _, model = checkpoint.load_run(run[0])
    checkpoint.load_train_state(run[0], model, torch.optim.Adam(model.parameters()))


def test_remove_stale_temps_after_a_killed_write(run):
    run_dir = run[0]
    torn = run_dir / f".{checkpoint.STATE}.abc123.tmp"
    torn.write_bytes(b"half a checkpoint")  # what SIGKILL mid-atomic_write leaves
    keep = run_dir / "notes.tmp"  # not one of ours: no leading dot
    keep.write_text("x")
    assert files.remove_stale_temps(run_dir) == [torn]
    assert not torn.exists() and keep.exists() and (run_dir / checkpoint.STATE).exists()
