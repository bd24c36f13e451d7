"""Handlers of ``eval`` and ``reconstruct`` on second-stage runs, and of ``eval`` on probe runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vqvae.data.images import read_image, write_image
from vqvae.priors.codes import dataset_codes, fingerprint, load_prior
from vqvae.world import inference
from vqvae.core import checkpoint
from vqvae.core.task import load_split, raw
from vqvae.world.probe import read_errors
from vqvae.world.tasks import evaluate_stage2, probe_summary, summary


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




def evaluate_probe(args: argparse.Namespace) -> dict:
    """``vqvae eval PROBE``: position and heading errors on a split of the run's doom episodes."""
    cfg, model = checkpoint.load_run(args.run)
    ds = load_split(cfg, args.split, args.data_root)
    m = {"run": str(args.run), "split": args.split, **read_errors(raw(model), ds.images, ds.labels)}
    print(json.dumps(m, indent=2) if args.json else probe_summary(m))
    return m
