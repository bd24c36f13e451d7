"""Handlers of the family-agnostic commands: ``vqvae train`` and ``vqvae encode`` (any tokenizer, through its task)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vqvae.core import checkpoint
from vqvae.core.errors import VQVAEError
from vqvae.core.runs import DatasetRecipe, RunArgs, train as train_run
from vqvae.core.task import tokenizer_task
from vqvae.data.sets import ImageSet


def run_args(args: argparse.Namespace) -> RunArgs:
    """The lifecycle's arguments of a train-like command (see :func:`vqvae.core.commands.add_run_options`)."""
    return RunArgs(out=args.out, resume=args.resume, steps=args.steps, minutes=args.minutes, data_root=args.data_root,
                   overrides=list(args.overrides), progress=not args.no_progress)


def train(args: argparse.Namespace) -> dict:
    return train_run(DatasetRecipe(run_args(args), args.data, args.config))


def encode(args: argparse.Namespace) -> Path:
    """``vqvae encode RUN``: a split's codes -> ``.npy`` (and its labels beside it)."""
    cfg, model = checkpoint.load_run(args.run)
    task = tokenizer_task(cfg.arch, args.run)
    if args.data:
        cfg.data.name = args.data
    ds = task.load_split(cfg, args.split, args.data_root)
    if isinstance(ds, ImageSet) and ds.channels != cfg.model.in_channels:
        raise VQVAEError(f"{ds.name} has {ds.channels} channels but the model expects {cfg.model.in_channels}")
    codes = task.encode(model, ds.images)  # audio: (N, T / 64) content codes, speaker labels beside
    dtype = np.int16 if cfg.model.codebook_size <= 2**15 else np.int32
    dest = Path(args.out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.save(dest, codes.astype(dtype))
    msg = f"{codes.shape[0]} code maps {codes.shape[1:]} -> {dest}"
    if ds.labels is not None:
        lab = dest.with_name(dest.stem + ".labels.npy")
        np.save(lab, ds.labels.numpy())
        msg += f", labels -> {lab}"
    print(msg)
    return dest
