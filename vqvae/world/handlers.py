"""Handlers of ``eval`` and ``reconstruct`` on second-stage runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vqvae.data.images import read_image, write_image
from vqvae.priors.codes import dataset_codes, fingerprint, load_prior
from vqvae.world import inference
from vqvae.world.tasks import evaluate_stage2, summary


def evaluate(args: argparse.Namespace) -> dict:
    """``vqvae eval RUN``: the NLL of the tokenizer's test code maps with their own and other maps' latents."""
    cfg, model, tok_cfg, tok = load_prior(args.run)
    codes = dataset_codes(cfg.tokenizer.path, tok_cfg, tok, fingerprint(tok_cfg, tok), args.split, data_root=args.data_root).images
    m = {"run": str(args.run), "split": args.split, **evaluate_stage2(model, codes)}
    print(json.dumps(m, indent=2) if args.json else summary(m))
    return m


@torch.no_grad()
def reconstruct(args: argparse.Namespace) -> list[Path]:
    """Frames in, same-named PNG second-stage reconstructions out (one draw of the decoder each, ``--seed``)."""
    cfg, model, tok_cfg, tok = load_prior(args.run)
    g = torch.Generator().manual_seed(args.seed)
    written = []
    for p in args.images:
        x = read_image(p, channels=tok_cfg.model.in_channels)
        y = inference.reconstruct_frames(model, tok_cfg, tok, x[None], g)[0]
        dest = Path(args.out) / (Path(p).stem + ".png")
        write_image(dest, y)
        written.append(dest)
        print(f"{p} -> {dest}")
    return written


