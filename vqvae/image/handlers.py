"""Handlers of the image tokenizers' commands: ``dvae train``, and ``eval``/``reconstruct``/``decode`` on their runs."""

from __future__ import annotations

import argparse
import json
import tokenize
from pathlib import Path

import numpy as np

from vqvae.core import checkpoint, plots
from vqvae.core.errors import VQVAEError
from vqvae.core.handlers import run_args
from vqvae.core.runs import DatasetRecipe, train
from vqvae.core.task import load_split
from vqvae.data.images import MAX_PIXELS, read_image, write_image
from vqvae.image import inference
from vqvae.image.tasks import summary


MAX_CODES_BYTES = 2**30  # the largest code file vqvae decode reads


def train_dvae(args: argparse.Namespace) -> dict:
    return train(DatasetRecipe(run_args(args), args.data, args.config or "dvae"))


def evaluate(args: argparse.Namespace) -> dict:
    """``vqvae eval TOKENIZER_RUN``: PSNR, SSIM, codebook usage, perplexity and bits/dim on a split."""
    cfg, model = checkpoint.load_run(args.run)
    if args.data:
        cfg.data.name = args.data
    ds = load_split(cfg, args.split, args.data_root)
    if ds.channels != cfg.model.in_channels:
        raise VQVAEError(f"{ds.name} has {ds.channels} channels but the model expects {cfg.model.in_channels}")
    m = {"run": str(args.run), "data": ds.name, "split": args.split, **inference.evaluate(model, ds.images, desc="eval")}
    print(json.dumps(m, indent=2) if args.json else summary(m))
    return m


def reconstruct(args: argparse.Namespace) -> list[Path]:
    """Image files in, same-named PNG reconstructions out (any size: padded, then cropped back)."""
    cfg, model = checkpoint.load_run(args.run)
    written = []
    for p in args.images:
        x = read_image(p, channels=cfg.model.in_channels, max_pixels=args.max_pixels or MAX_PIXELS)
        dest = Path(args.out) / (Path(p).stem + ".png")
        write_image(dest, inference.reconstruct(model, x[None])[0])
        written.append(dest)
        print(f"{p} -> {dest}")
    return written


def decode(args: argparse.Namespace) -> Path:
    """Code maps (``.npy``) -> PNG images, and optionally a grid of the first 64."""
    cfg, model = checkpoint.load_run(args.run)
    codes = _read_codes(Path(args.codes), cfg.model)
    images = inference.decode(model, codes, desc="decode")
    out = Path(args.out)
    for i, img in enumerate(images):
        write_image(out / f"{i:06d}.png", img)
    if args.grid:
        plots.save_grid(images[:64], args.grid, scale=max(1, 64 // images.shape[-1]))
    print(f"{len(images)} images -> {out}")
    return out


def _read_codes(p: Path, m) -> np.ndarray:
    """Integer code maps ``(N, h, w)`` (``(N, G, h, w)`` with G codebooks; one map without N) in ``[0, K)``, or a one-line error."""
    if not p.is_file():
        raise VQVAEError(f"codes file {p} not found")
    try:
        with open(p, "rb") as f:  # the header first: a declared shape too large is refused before anything is read
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
        if dtype.hasobject or int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > MAX_CODES_BYTES:
            raise VQVAEError(f"{p}: a {dtype} array of shape {shape}: expected integer code maps of at most "
                             f"{MAX_CODES_BYTES // 2**20} MB")
        codes = np.load(p, allow_pickle=False)
    except VQVAEError:
        raise
    except (ValueError, SyntaxError, tokenize.TokenError, OSError, EOFError, UnicodeDecodeError, MemoryError, TypeError) as e:
        raise VQVAEError(f"{p} is not a .npy array of codes ({type(e).__name__}: {str(e)[:100]})") from None
    g = m.num_codebooks
    if codes.ndim == (2 if g == 1 else 3):
        codes = codes[None]
    if codes.ndim != (3 if g == 1 else 4) or (g > 1 and codes.shape[1] != g) or not np.issubdtype(codes.dtype, np.integer):
        want = "(N, h, w)" if g == 1 else f"(N, {g}, h, w)"
        raise VQVAEError(f"{p}: expected integer code maps {want}, got {codes.dtype} {codes.shape}")
    if codes.shape[0] == 0 or codes.size == 0:
        raise VQVAEError(f"{p}: no code maps in it (shape {codes.shape}); expected at least one")
    if codes.min() < 0 or codes.max() >= m.codebook_size:
        raise VQVAEError(f"{p}: codes must lie in [0, {m.codebook_size}), got [{codes.min()}, {codes.max()}]")
    return codes.astype(np.int64)  # native byte order, whatever the file's
