"""The command line end to end on a tiny run, and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import blobs, write_npy_data
from vqvae.core import checkpoint
from vqvae.image import inference
from vqvae.cli import main
from vqvae.data.images import read_image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_npy_data(root / "data")
    run = root / "run"
    rc = main(["train", "--config", "tiny", "--data", data, "--out", str(run), "--steps", "12", "--no-progress",
               "--train.eval_images=8", "--model.codebook_size=16"])
    assert rc == 0
    return root, data, run


def test_train_writes_run_and_pictures(trained):
    _, _, run = trained
    for name in ("config.json", "model.safetensors", "train_state.safetensors", "metrics.jsonl", "eval.json",
                 "reconstructions.png", "codebook_usage.png", "loss_curves.png"):
        assert (run / name).is_file(), name
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["codebook_size"] == 16 and cfg["train"]["steps"] == 12 and cfg["model"]["in_channels"] == 1


def test_eval_json(trained, capsys):
    _, data, run = trained
    assert main(["eval", str(run), "--data", data, "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["images"] == 24 and 0 < m["usage_pct"] <= 100 and m["dead_codes"] == 16 - round(m["usage_pct"] * 16 / 100)
    assert 1 <= m["perplexity"] <= 16 and m["psnr"] > 0
    # uniform prior: bits/dim = recon bits + log2(K) per latent / sub-pixels; 4x4 latents of 16x16x1 images
    assert m["bits_per_dim"] == pytest.approx(m["recon_bits_per_dim"] + 16 * 4 / 256, rel=1e-6)


def test_reconstruct_odd_sizes_keep_their_size(trained, tmp_path):
    _, _, run = trained
    paths = []
    for i, (h, w) in enumerate(((13, 21), (16, 16), (5, 7))):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(blobs(1, 32)[0, 0][:h, :w]).save(p)
        paths.append(str(p))
    assert main(["reconstruct", str(run), *paths, "-o", str(tmp_path / "out")]) == 0
    for p, (h, w) in zip(paths, ((13, 21), (16, 16), (5, 7))):
        y = read_image(tmp_path / "out" / Path(p).name)
        assert y.shape == (1, h, w)


def test_encode_then_decode_equals_reconstruction(trained, tmp_path):
    _, data, run = trained
    codes = tmp_path / "codes.npy"
    assert main(["encode", str(run), "--data", data, "--split", "test", "-o", str(codes)]) == 0
    c = np.load(codes)
    assert c.shape == (24, 4, 4) and c.dtype == np.int16 and 0 <= c.min() and c.max() < 16
    assert np.array_equal(np.load(tmp_path / "codes.labels.npy"), np.arange(24) % 10)
    assert main(["decode", str(run), str(codes), "-o", str(tmp_path / "dec"), "--grid", str(tmp_path / "grid.png")]) == 0
    decoded = torch.stack([read_image(tmp_path / "dec" / f"{i:06d}.png") for i in range(24)])
    _, model = checkpoint.load_run(run)
    x = torch.from_numpy(np.load(data.replace("{split}", "test")))
    assert torch.equal(decoded, inference.reconstruct(model, x))  # decode(encode(x)) is the reconstruction
    assert (tmp_path / "grid.png").is_file()


def test_resume_needs_out_and_refuses_overwrite(trained, capsys):
    _, data, run = trained
    assert main(["train", "--config", "tiny", "--data", data, "--out", str(run), "--steps", "2"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--data", data, "--resume", "--steps", "2"]) == 2


@pytest.mark.parametrize("argv, expect", [
    (["train", "--config", "tiny", "--model.bogus=1"], "valid keys"),
    (["train", "--config", "tiny", "--train.lr=-1"], "lr"),
    (["train", "--config", "tiny", "--model.quantizer=kmeans"], "quantizer"),
    (["train", "--config", "no-such-preset"], "no-such-preset"),
    (["train", "--config", "tiny", "--data", "no-such-data"], "unknown dataset"),
    (["eval", "/no/such/run"], "does not exist"),
    (["reconstruct", "/no/such/run", "x.png", "-o", "/tmp/x"], "does not exist"),
])
def test_user_errors_are_one_line(argv, expect, capsys, tmp_path):
    assert main(argv + (["--out", str(tmp_path / "r")] if argv[0] == "train" else [])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and expect in err and "\n" not in err and "Traceback" not in err


def test_bad_inputs_on_a_real_run(trained, tmp_path, capsys):
    _, _, run = trained
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert main(["reconstruct", str(run), str(tmp_path / "bad.png"), "-o", str(tmp_path)]) == 2
    np.save(tmp_path / "c.npy", np.full((2, 4, 4), 99, np.int64))
    assert main(["decode", str(run), str(tmp_path / "c.npy"), "-o", str(tmp_path)]) == 2
    np.save(tmp_path / "f.npy", np.zeros((2, 4, 4), np.float32))
    assert main(["decode", str(run), str(tmp_path / "f.npy"), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a readable image" in err and "[0, 16)" in err and "integer code maps" in err


def test_console_entry_point_prints_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "vqvae", "eval", str(tmp_path)], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


@pytest.mark.slow
def test_demo_trains_tokenizer_and_prior(tmp_path):
    from vqvae.core.errors import DataError
    from vqvae.data.images import load_images

    try:
        load_images("fashion-mnist", "test")
    except DataError:
        pytest.skip("Fashion-MNIST is not under any data root")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--minutes", "0.05", "--prior-minutes", "0.05"]) == 0
    for name in ("reconstructions.png", "codebook_usage.png", "loss_curves.png", "eval.json", "prior/samples.png", "prior/config.json"):
        assert (out / name).is_file(), name
    with Image.open(out / "prior" / "samples.png") as grid:  # 28 px images scaled x2 with 2 px gaps: 10 rows of 7
        assert grid.size == ((7 * 30 + 2) * 2, (10 * 30 + 2) * 2)  # one full row per class
    assert main(["demo", "--out", str(out), "--minutes", "0.02", "--prior-minutes", "0"]) == 0  # replaces the earlier run
    assert not (out / "prior").exists()


def test_the_newcomers_stumbles(tmp_path, capsys):
    """A colour photo through a grey model is converted with a notice; the unknown-dataset error and --data-root's
    help name everything the README names; demo takes the --data.download=true its error suggests."""
    from vqvae.data.images import read_image
    from vqvae.data.roots import DATASET_NAMES

    Image.fromarray(np.full((8, 8, 3), (200, 10, 10), np.uint8)).save(tmp_path / "red.png")
    x = read_image(tmp_path / "red.png", channels=1)
    assert x.shape == (1, 8, 8) and int(x[0, 0, 0]) == (200 * 299 + 10 * 587 + 10 * 114 + 500) // 1000
    assert "red.png is colour; converted to grey" in capsys.readouterr().err
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(tmp_path / "grey.png")
    assert read_image(tmp_path / "grey.png", channels=3).tolist() == torch.full((3, 8, 8), 90).tolist()
    assert "grey.png is grey; converted to RGB" in capsys.readouterr().err

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("## Data"):readme.index("## Benchmarks")]
    for name in ("mnist", "fashion-mnist", "cifar10", "scenes", "scenes:N", "fsdd"):
        assert f"`{name}`" in table and name in DATASET_NAMES
    assert main(["train", "--data", "no-such-set", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert all(n in err for n in DATASET_NAMES) and err.count("\n") == 1

    for argv in (["train", "--help"], ["demo", "--help"], ["eval", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        help_text = " ".join(capsys.readouterr().out.split())
        assert "$VQVAE_DATA, ./data, ../shared/data, the repository's ../shared/data and ~/.cache/vqvae/data" in help_text
    with pytest.raises(SystemExit) as e:
        main(["demo", "--data.download=maybe"])
    assert e.value.code == 2  # a real option: true or false
