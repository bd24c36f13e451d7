"""Handlers of the family-agnostic commands: ``vqvae train`` and ``vqvae encode`` (any tokenizer, through its task)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vqvae.core import checkpoint, zoo, zoo_build
from vqvae.core.errors import VQVAEError
from vqvae.core.files import atomic_write_with
from vqvae.core.runs import DatasetRecipe, RunArgs, code_recipe, train as train_run
from vqvae.core.task import tokenizer_task
from vqvae.data.sets import ImageSet


def run_args(args: argparse.Namespace) -> RunArgs:
    """The lifecycle's arguments of a train-like command (see :func:`vqvae.core.commands.add_run_options`)."""
    return RunArgs(out=args.out, resume=args.resume, steps=args.steps, minutes=args.minutes, data_root=args.data_root,
                   overrides=list(args.overrides), progress=not args.no_progress)


def train(args: argparse.Namespace) -> dict:
    if args.tokenizer:  # a model over a tokenizer's codes (the world family's second stage)
        return train_run(code_recipe(run_args(args), args.tokenizer, args.config, args.data))
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
    dest = dest if dest.suffix == ".npy" else Path(f"{dest}.npy")  # as np.save names it
    atomic_write_with(dest, lambda f: np.save(f, codes.astype(dtype)))
    msg = f"{codes.shape[0]} code maps {codes.shape[1:]} -> {dest}"
    if ds.labels is not None:
        lab = dest.with_name(dest.stem + ".labels.npy")
        atomic_write_with(lab, lambda f: np.save(f, ds.labels.numpy()))
        msg += f", labels -> {lab}"
    print(msg)
    return dest


def zoo_list(args: argparse.Namespace) -> list[dict]:
    """``vqvae zoo``: the shipped models with their size, data and headline figures."""
    rows = zoo.listing()
    if args.json:
        print(json.dumps(rows, indent=2))
        return rows
    if not rows:
        print("the zoo is empty")
    for r in rows:
        print(f"zoo:{r['name']}  ({r['size_mb']:.1f} MB)  {r['summary']}\n    data: {r['data']}")
        if r["headline"]:
            print("    " + "; ".join(f"{k}: {v}" for k, v in r["headline"].items()))
        for u in r["use"]:
            print(f"    $ {u}")
    return rows


def _json_object(flag: str, text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise VQVAEError(f"{flag} must be a JSON object ({e})") from None
    if not isinstance(value, dict):
        raise VQVAEError(f"{flag} must be a JSON object, got {text!r}")
    return value


def zoo_export(args: argparse.Namespace) -> Path:
    """``vqvae zoo export NAME PART=RUN ...``: a zoo model from run directories (see :func:`vqvae.core.zoo.export`)."""
    parts = {}
    for spec in args.parts:
        part, sep, run = spec.partition("=")
        if not sep or not part or not run:
            raise VQVAEError(f"parts are PART=RUN, got {spec!r}")
        checkpoint.load_run(run)  # each must load as a run
        parts[part] = run
    headline, sampling = _json_object("--headline", args.headline), _json_object("--sampling", args.sampling)
    fp16 = tuple(p for p in args.fp16.split(",") if p)
    folder = zoo_build.export(args.name, parts, args.main, args.summary, args.data, headline, args.use, fp16, args.card,
                              sampling=sampling)
    for part in parts:  # the exported runs load, priors with their tokenizer (fingerprint checked)
        checkpoint.load_run(folder / part)
    print(f"zoo:{args.name} -> {folder} ({zoo.size_bytes(args.name) / 1e6:.2f} MB)")
    return folder
