"""Priors end to end: codes cache, prior training, sampling, bits/dim, sample scoring, and their errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.helpers import write_npy_data
from vqvae.core import checkpoint
from vqvae.priors import codes
from vqvae.image import inference
from vqvae.scoring import scores as scoring
from vqvae.cli import main
from vqvae.data.images import read_image

QUICK = ["--no-progress", "--train.eval_images=8", "--train.batch_size=16", "--train.log_every=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("prior")
    data = write_npy_data(root / "data")
    tok = root / "tok"
    assert main(["train", "--config", "tiny", "--data", data, "--out", str(tok), "--steps", "12", "--no-progress",
                 "--train.eval_images=8", "--model.codebook_size=16"]) == 0
    pix = root / "pix"
    assert main(["prior", "train", "--tokenizer", str(tok), "--arch", "pixelcnn", "--conditional", "--out", str(pix), "--steps", "6",
                 "--model.channels=16", "--model.layers=3", "--model.out_hidden=16", *QUICK]) == 0
    gpt = root / "gpt"
    assert main(["prior", "train", "--tokenizer", str(tok), "--arch", "transformer", "--out", str(gpt), "--steps", "6",
                 "--model.n_layer=1", "--model.n_embd=16", "--model.n_head=2", *QUICK]) == 0
    cls = root / "cls"
    assert main(["classifier", "train", "--data", data, "--out", str(cls), "--steps", "6", "--model.width=4", "--model.feature_dim=8",
                 *QUICK]) == 0
    return root, data, tok, pix, gpt, cls


def test_prior_runs_record_their_tokenizer(runs):
    _, _, tok, pix, gpt, _ = runs
    tok_cfg, tok_model, fp = codes.load_tokenizer(tok)
    for run, arch, classes in ((pix, "pixelcnn", 10), (gpt, "transformer", 0)):
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["arch"] == arch and cfg["tokenizer"] == {"path": str(tok.resolve()), "fingerprint": fp}
        assert cfg["model"]["codebook_size"] == 16 and (cfg["model"]["height"], cfg["model"]["width"]) == (4, 4)
        assert cfg["model"]["num_classes"] == classes
        for name in ("model.safetensors", "train_state.safetensors", "metrics.jsonl", "samples.png", "eval.json", "loss_curves.png"):
            assert (run / name).is_file(), name
        assert 0 < json.loads((run / "eval.json").read_text())["bits_per_code"] < 10


def test_codes_cache_is_reused_and_matches_encode(runs):
    _, data, tok, *_ = runs
    cached = sorted((tok / "codes").glob("*.npz"))
    assert len(cached) == 2  # train and test, encoded once for both priors
    tok_cfg, tok_model, fp = codes.load_tokenizer(tok)
    cs = codes.dataset_codes(tok, tok_cfg, tok_model, fp, "test")
    x = torch.from_numpy(np.load(data.replace("{split}", "test")))
    assert torch.equal(cs.images, torch.from_numpy(inference.encode(tok_model, x)))
    assert torch.equal(cs.labels, torch.arange(24) % 10)


def test_sample_is_reproducible_and_decodes(runs, tmp_path):
    _, _, tok, pix, gpt, _ = runs
    for run in (pix, gpt):
        a, b = tmp_path / f"{run.name}a.npy", tmp_path / f"{run.name}b.npy"
        assert main(["sample", str(run), "-n", "6", "--seed", "3", "-o", str(tmp_path / "g.png"), "--save-codes", str(a)]) == 0
        assert main(["sample", str(run), "-n", "6", "--seed", "3", "-o", str(tmp_path / "g.png"), "--save-codes", str(b),
                     "--temperature", "0.5", "--top-k", "4", "--top-p", "0.9"]) == 0
        ca = np.load(a)
        assert ca.shape == (6, 4, 4) and 0 <= ca.min() and ca.max() < 16
        assert main(["sample", str(run), "-n", "6", "--seed", "3", "-o", str(tmp_path / "g2.png"), "--save-codes", str(b)]) == 0
        assert np.array_equal(ca, np.load(b))
        assert read_image(tmp_path / "g.png").shape[0] == 1
    assert main(["sample", str(pix), "-n", "4", "--label", "7", "-o", str(tmp_path / "l.png")]) == 0


def test_eval_bits_per_dim_adds_prior_bits(runs, capsys):
    _, data, tok, pix, gpt, cls = runs
    assert main(["eval", str(gpt), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    # learned-prior bound = recon bits + prior bits per map, over 16x16 sub-pixels; uniform adds 16 codes x log2(16)
    assert m["bits_per_dim_uniform_prior"] == pytest.approx(m["recon_bits_per_dim"] + 16 * 4 / 256, rel=1e-6)
    assert m["bits_per_dim"] == pytest.approx(m["recon_bits_per_dim"] + m["prior_bits_per_code"] * 16 / 256, rel=1e-6)
    assert m["uniform_bits_per_code"] == 4.0
    assert main(["eval", str(pix), "--json", "--classifier", str(cls), "-n", "20"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert 0 <= m["sample_accuracy"] <= 1 and 0 <= m["classifier_test_accuracy"] <= 1
    assert m["fd_samples"] >= 0 and m["fd_reconstructions"] >= 0
    assert main(["eval", str(cls), "--json"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["accuracy"] <= 1


def test_prior_refuses_a_changed_tokenizer(runs, tmp_path, capsys):
    import shutil

    _, _, tok, pix, *_ = runs
    moved_tok, moved_prior = tmp_path / "tok", tmp_path / "pix"
    shutil.copytree(tok, moved_tok)
    shutil.copytree(pix, moved_prior)
    cfg = json.loads((moved_prior / "config.json").read_text())
    cfg["tokenizer"]["path"] = str(moved_tok)
    checkpoint.atomic_write(moved_prior / "config.json", json.dumps(cfg).encode())
    assert main(["sample", str(moved_prior), "-n", "2", "-o", str(tmp_path / "ok.png")]) == 0
    from safetensors.torch import load_file, save_file

    w = load_file(moved_tok / "model.safetensors")
    w["quantizer.embedding"] += 0.01  # "retrained"
    save_file(w, moved_tok / "model.safetensors")
    assert main(["sample", str(moved_prior), "-n", "2", "-o", str(tmp_path / "x.png")]) == 2
    assert "not the one prior" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expect", [
    (["sample", "{pix}", "-n", "0", "-o", "x.png"], "-n must be >= 1"),
    (["sample", "{pix}", "--temperature", "0", "-o", "x.png"], "--temperature must be > 0"),
    (["sample", "{pix}", "--label", "10", "-o", "x.png"], "--label must be in [0, 10)"),
    (["sample", "{gpt}", "--label", "1", "-o", "x.png"], "unconditional"),
    (["sample", "{tok}", "-o", "x.png"], "not a prior"),
    (["sample", "/no/such/run", "-o", "x.png"], "does not exist"),
    (["prior", "train", "--tokenizer", "{pix}", "--arch", "pixelcnn"], "not a tokenizer"),
    (["prior", "train", "--tokenizer", "{tok}", "--arch", "pixelcnn", "--model.codebook_size=3"], "set by the tokenizer"),
    (["prior", "train", "--tokenizer", "{tok}", "--arch", "transformer", "--model.n_head=5"], "n_head"),
    (["eval", "{pix}", "--classifier", "{tok}", "-n", "4"], "not a classifier"),
])
def test_prior_user_errors_are_one_line(runs, argv, expect, capsys, tmp_path):
    _, _, tok, pix, gpt, _ = runs
    argv = [a.format(tok=tok, pix=pix, gpt=gpt) for a in argv]
    argv = [str(tmp_path / a) if a.endswith(".png") else a for a in argv]
    if argv[0] == "prior":
        argv += ["--out", str(tmp_path / "p"), "--steps", "1", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and expect in err and "\n" not in err, err


def test_prior_resume_continues(runs, tmp_path):
    _, _, tok, *_ = runs
    out = tmp_path / "r"
    args = ["prior", "train", "--tokenizer", str(tok), "--arch", "transformer", "--out", str(out), "--model.n_layer=1",
            "--model.n_embd=16", "--model.n_head=2", *QUICK]
    assert main([*args, "--steps", "3"]) == 0
    assert main(["prior", "train", "--tokenizer", str(tok), "--arch", "transformer", "--out", str(out), "--resume", "--steps", "5",
                 *QUICK]) == 0
    assert json.loads((out / "eval.json").read_text())["step"] == 5


def test_frechet_distance_against_closed_forms():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()  # diagonal covariances
    assert scoring.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want, rel=1e-9)
    m = rng.normal(size=(5, 5))
    s = m @ m.T
    assert scoring.frechet_distance(mu1, s, mu1, s) == pytest.approx(0, abs=1e-8)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))  # commuting covariances: same eigenvectors
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    assert scoring.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-7)
    assert math.isfinite(scoring.frechet_distance(mu1, s, mu2, np.eye(5)))


def test_several_codebooks_end_to_end(tmp_path, capsys):
    """A tokenizer with G = 2 codebooks (the paper's CIFAR layout, smaller): both priors train, sample and evaluate."""
    data = write_npy_data(tmp_path / "data", channels=3)
    tok = tmp_path / "tok"
    assert main(["train", "--config", "tiny", "--data", data, "--out", str(tok), "--steps", "4", "--no-progress", "--train.eval_images=8",
                 "--model.codebook_size=8", "--model.num_codebooks=2", "--model.likelihood=categorical"]) == 0
    for arch, sizes in (("pixelcnn", ["--model.channels=8", "--model.layers=2", "--model.out_hidden=8"]),
                        ("transformer", ["--model.n_layer=1", "--model.n_embd=16", "--model.n_head=2"])):
        run = tmp_path / arch
        assert main(["prior", "train", "--tokenizer", str(tok), "--arch", arch, "--out", str(run), "--steps", "3", *sizes, *QUICK]) == 0
        assert json.loads((run / "config.json").read_text())["model"]["num_codebooks"] == 2
        assert main(["sample", str(run), "-n", "3", "-o", str(tmp_path / "s.png"), "--save-codes", str(tmp_path / "s.npy")]) == 0
        assert np.load(tmp_path / "s.npy").shape == (3, 2, 4, 4)
        capsys.readouterr()
        assert main(["eval", str(run), "--json"]) == 0
        m = json.loads(capsys.readouterr().out)
        # uniform: 2 codebooks x 16 positions x log2(8) bits over 3*16*16 sub-pixels
        assert m["bits_per_dim_uniform_prior"] == pytest.approx(m["recon_bits_per_dim"] + 2 * 16 * 3 / 768, rel=1e-6)
        assert m["bits_per_dim"] == pytest.approx(m["recon_bits_per_dim"] + m["prior_bits_per_code"] * 32 / 768, rel=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_inception_fid_option_with_a_torchscript_stand_in(runs, tmp_path, capsys):
    """The real inception-2015-12-05.pt is not available offline; a scripted module with its
    calling convention (float [0, 255] RGB in, ``return_features=True`` -> (N, F)) exercises the path."""

    class FakeInception(torch.nn.Module):
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            assert x.shape[1] == 3
            x = torch.nn.functional.interpolate(x / 255.0, size=(8, 8), mode="bilinear", align_corners=False)
            return x.flatten(1)[:, :16]

    path = tmp_path / "inception.pt"
    torch.jit.script(FakeInception()).save(str(path))
    _, _, _, pix, _, _ = runs
    assert main(["eval", str(pix), "--json", "--inception", str(path), "-n", "20"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["fid_inception_samples"] >= 0 and m["fid_inception_reconstructions"] >= 0 and "fd_samples" not in m
    (tmp_path / "junk.pt").write_bytes(b"junk")
    for bad in (tmp_path / "junk.pt", tmp_path / "missing.pt"):
        assert main(["eval", str(pix), "--inception", str(bad), "-n", "4"]) == 2
        assert "inception" in capsys.readouterr().err.lower()
