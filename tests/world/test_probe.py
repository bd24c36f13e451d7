"""The position and heading probe: its targets and readings agree, headings wrap, and it trains from the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from vqvae.cli import main
from vqvae.world.probe import Probe, ProbeConfig, heading_error, read_errors, spread


def test_headings_wrap_around_and_readings_invert_the_targets():
    assert heading_error(torch.tensor([359.0, 10.0, 90.0]), torch.tensor([1.0, 350.0, 270.0])).tolist() == [2.0, 20.0, 180.0]
    v = torch.tensor([[100.0, -50.0, 30.0], [-20.0, 400.0, 300.0], [5.0, 5.0, 180.0]])
    p = Probe(ProbeConfig(**spread(v), input_size=84))
    p.forward = lambda frames: p.targets(v)  # a perfect probe: outputs its own targets
    got = p.read(torch.zeros(3, 3, 84, 84, dtype=torch.uint8))
    assert torch.allclose(got[:, :2], v[:, :2], atol=1e-3) and heading_error(got[:, 2], v[:, 2]).max() < 1e-3
    m = read_errors(p, torch.zeros(3, 3, 84, 84, dtype=torch.uint8), v)
    assert m["position_error"] < 1e-3 and m["heading_within_15"] == 1.0 and m["frames"] == 3


def test_a_constant_reading_scores_as_far_as_the_truth_is():
    v = torch.tensor([[0.0, 0.0, 0.0], [30.0, 40.0, 90.0]])
    p = Probe(ProbeConfig(input_size=84))
    p.read = lambda frames: torch.zeros(frames.shape[0], 3)
    m = read_errors(p, torch.zeros(2, 3, 84, 84, dtype=torch.uint8), v)
    assert m["position_error"] == pytest.approx(25.0) and m["heading_error_deg"] == pytest.approx(45.0)
    assert m["heading_within_15"] == 0.5


def test_the_probe_trains_on_doom_frames_and_evaluates(tmp_path, capsys):
    pytest.importorskip("vizdoom", reason="the doom frames need ViZDoom (pip install -e '.[world]')")
    root = ["--data-root", str(tmp_path / "data")]
    argv = ["train", "--config", "doom-probe", "--data", "doom:2", "--model.channels=4", "--model.hidden=8", "--steps", "3",
            "--train.eval_images=50", "--no-progress", *root]
    assert main([*argv, "--out", str(tmp_path / "p")]) == 0
    cfg = json.loads((tmp_path / "p" / "config.json").read_text())
    assert cfg["arch"] == "probe" and cfg["model"]["scale"] != 1.0 and cfg["model"]["input_size"] == 84  # from the frames
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "p"), "--json", *root]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["frames"] == 200 and m["position_error"] > 0 and 0 <= m["heading_within_15"] <= 1
    assert main([*argv, "--out", str(tmp_path / "q"), "--data.hflip=true"]) == 2
    assert "mirrors the frames but not the heading" in capsys.readouterr().err
