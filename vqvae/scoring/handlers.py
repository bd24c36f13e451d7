"""Handlers of ``classifier train`` and of ``eval`` on classifier runs (the scene reader's too)."""

from __future__ import annotations

import argparse
import json

from vqvae import registry
from vqvae.core import checkpoint
from vqvae.core.config import preset_for
from vqvae.core.handlers import run_args
from vqvae.core.errors import VQVAEError
from vqvae.core.runs import DatasetRecipe, train as train_run
from vqvae.data.sets import ImageSet


def classifier_preset(data: str) -> str:
    """``scene-reader`` for the captioned scenes, ``classifier-audio`` (log-mel input) for audio datasets, else ``classifier``."""
    return {"scenes": "scene-reader", "fsdd": "classifier-audio"}.get(preset_for(data), "classifier")


def train(args: argparse.Namespace) -> dict:
    return train_run(DatasetRecipe(run_args(args), args.data, args.config or classifier_preset(args.data)))


def evaluate(args: argparse.Namespace) -> dict:
    """``vqvae eval CLASSIFIER_RUN``: accuracy (and, for the scene reader, per attribute) on a split."""
    cfg, model = checkpoint.load_run(args.run)
    task = registry.task_for(cfg.arch)
    ds = task.load_split(cfg, args.split, args.data_root)
    want = getattr(cfg.model, "in_channels", 3)  # the scene reader reads RGB scenes
    if isinstance(ds, ImageSet) and ds.channels != want:
        raise VQVAEError(f"{ds.name} has {ds.channels} channels but the model expects {want}")
    m = {"run": str(args.run), "data": ds.name, "split": args.split, **task.evaluate(model, ds.images, ds.labels, 500)}
    print(json.dumps(m, indent=2) if args.json else f"{ds.name} {args.split}: accuracy {m['accuracy']:.4f}")
    return m
