"""Shared fixtures' builders: tiny image sets and configs that train in a second."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vqvae.cli import main
from vqvae.core.config import load_config
from vqvae.data.audio import write_wav
from vqvae.data.sets import ImageSet

SR = 8000  # the fake FSDD's sample rate


def blobs(n: int, size: int = 16, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Smooth random images (uint8 (N, C, H, W)): learnable, unlike white noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, channels, size, size), np.uint8)
    for i in range(n):
        cx, cy, r = rng.uniform(0.2, 0.8, 3)
        for c in range(channels):
            img = 255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.05 + 0.1 * r)) * rng.uniform(0.5, 1)
            out[i, c] = img.clip(0, 255).astype(np.uint8)
    return out


def image_set(n: int = 64, size: int = 16, channels: int = 1, seed: int = 0) -> ImageSet:
    x = blobs(n, size, channels, seed)
    return ImageSet(torch.from_numpy(x), torch.arange(n) % 10, None, "blobs")


def write_npy_data(folder: Path, size: int = 16, channels: int = 1) -> str:
    """Write blobs_{train,test}.npy (+ labels) and return the dataset name for --data."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", 96, 0), ("test", 24, 1)):
        np.save(folder / f"blobs_{split}.npy", blobs(n, size, channels, seed))
        np.save(folder / f"blobs_{split}.labels.npy", np.arange(n) % 10)
    return str(folder / "blobs_{split}.npy")


def tiny_config(**train):
    cfg = load_config("tiny", None, {"train": {"eval_images": 16, "log_every": 1, **train}})
    cfg.data.name = "blobs"
    return cfg


def fake_fsdd(folder):
    """FSDD-named clips: 2 speakers (different pitch) x 2 digits (different rhythm) x 7 takes (0-4 test)."""
    rec = folder / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    t = np.arange(600) / SR
    for spk, f0 in (("alice", 220.0), ("bob", 440.0)):
        for digit in (0, 1):
            for i in range(7):
                env = np.sin(np.pi * t * (2 + digit) / t[-1]) ** 2
                write_wav(rec / f"{digit}_{spk}_{i}.wav", 0.5 * env * np.sin(2 * np.pi * f0 * (1 + 0.01 * i) * t), SR)
    return folder


def tiny_codec_run(root: Path) -> Path:
    """A tiny residual tokenizer (``root/tok``) and the tiled prior over its codes (``root/prior``): a codec model
    given as a prior run, trained in a few seconds on blobs (``root/data``)."""
    data = write_npy_data(root / "data", size=32, channels=3)
    q = ["--no-progress", "--train.eval_images=8", "--train.batch_size=8"]
    assert main(["train", "--config", "tiny", "--data", data, "--out", str(root / "tok"), "--steps", "2", "--model.codebook_size=8",
                 "--model.num_codebooks=2", "--model.codebook_layout=residual", *q]) == 0
    assert main(["prior", "train", "--tokenizer", str(root / "tok"), "--arch", "transformer", "--config", "prior-codec", "--tile", "4",
                 "--out", str(root / "prior"), "--steps", "1", "--model.n_layer=1", "--model.n_embd=16", "--model.n_head=2", *q]) == 0
    return root
