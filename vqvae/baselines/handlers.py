"""Handlers of ``eval`` and ``reconstruct`` on the baselines' runs (``vqvae train --config vae|vimco`` trains them)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vqvae.baselines import bounds
from vqvae.baselines.tasks import summary
from vqvae.core import checkpoint
from vqvae.core.errors import VQVAEError
from vqvae.core.task import load_split
from vqvae.data.images import MAX_PIXELS, read_image, write_image
from vqvae.image.inference import pad_to_multiple


def evaluate(args: argparse.Namespace) -> dict:
    """``vqvae eval RUN``: bits/dim as the ELBO and the k-sample importance-weighted bound, the KL, PSNR."""
    cfg, model = checkpoint.load_run(args.run)
    if args.data:
        cfg.data.name = args.data
    if args.iw_samples is not None and args.iw_samples < 1:
        raise VQVAEError(f"--iw-samples must be >= 1, got {args.iw_samples}")
    ds = load_split(cfg, args.split, args.data_root)
    if ds.channels != cfg.model.in_channels:
        raise VQVAEError(f"{ds.name} has {ds.channels} channels but the model expects {cfg.model.in_channels}")
    m = {"run": str(args.run), "data": ds.name, "split": args.split,
         **bounds.evaluate(model, ds.images, args.iw_samples, desc="eval")}
    print(json.dumps(m, indent=2) if args.json else summary(m))
    return m


@torch.no_grad()
def reconstruct(args: argparse.Namespace) -> list[Path]:
    """Image files in, same-named PNG reconstructions out (from the posterior's mode; padded, then cropped back)."""
    cfg, model = checkpoint.load_run(args.run)
    written = []
    for p in args.images:
        x = read_image(p, channels=cfg.model.in_channels, max_pixels=args.max_pixels or MAX_PIXELS)
        y = model.reconstruct(pad_to_multiple(x[None], cfg.model.downsampling))[0, :, : x.shape[1], : x.shape[2]]
        dest = Path(args.out) / (Path(p).stem + ".png")
        write_image(dest, y)
        written.append(dest)
        print(f"{p} -> {dest}")
    return written
