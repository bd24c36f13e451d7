"""Handlers of the text-to-image commands: ``dalle train``, ``clip train``, ``generate``, and ``eval`` on DALL-E runs.

``generate RUN "prompt" -n 16 [--guidance G] [--candidates C] -o grid.png`` draws images for a caption (with
``C > 1``, the best 16 of ``16 C`` by CLIP or by the transformer's likelihood); ``eval DALLE_RUN --classifier READER``
measures prompt faithfulness on the captioned scenes.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from vqvae.core import plots, zoo
from vqvae.core.errors import VQVAEError
from vqvae.core.handlers import run_args
from vqvae.core.runs import train as train_run
from vqvae.core.train import pick_device
from vqvae.data import scenes
from vqvae.text2image import evaluate as t2i_eval
from vqvae.text2image.loading import load_clip, load_dalle, load_reader
from vqvae.text2image.recipes import ClipRecipe, DalleRecipe


def train_dalle(args: argparse.Namespace) -> dict:
    return train_run(DalleRecipe(run_args(args), args.tokenizer, args.data, args.config))


def train_clip(args: argparse.Namespace) -> dict:
    return train_run(ClipRecipe(run_args(args), args.data, args.config))


GENERATE_DEFAULTS = {"guidance": 1.0, "temperature": 1.0, "candidates": 1}  # for a run that is not a zoo model


def _sampling(args: argparse.Namespace) -> None:
    """Fill the generation settings not given: a zoo model's measured ones (its manifest's ``sampling``, with its
    reranking CLIP part), else plain sampling."""
    found = zoo.owner(args.run)
    rec = dict(found[1].get("sampling", {})) if found else {}
    for key, plain in GENERATE_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, rec.get(key, plain))
    if args.clip is None and rec.get("clip"):
        args.clip = str(zoo.resolve(f"zoo:{found[0]}/{rec['clip']}"))


def generate(args: argparse.Namespace) -> Path:
    _sampling(args)
    n, c = args.n, args.candidates
    if args.temperature <= 0 or args.top_k < 0 or not 0 < args.top_p <= 1 or args.guidance < 0:
        raise VQVAEError("need --temperature > 0, --top-k >= 0, --top-p in (0, 1] and --guidance >= 0")
    dev = pick_device(args.device)
    cfg, model, text, tok = load_dalle(args.run, dev)
    clip = load_clip(args.clip, dev) if args.clip else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text.encode(args.prompt)
    for w in caught:
        print(f"warning: {w.message}")
    images = t2i_eval.draw(model.eval(), text, tok, [args.prompt], n, guidance=args.guidance, temperature=args.temperature,
                           top_k=args.top_k, top_p=args.top_p, seed=args.seed, candidates=c, progress=n * c > 256, clip=clip).images
    plots.save_grid(images, args.out, nrow=min(n, 8), scale=max(1, 64 // images.shape[-1]))
    best = f", the best {n} of {n * c} by {'CLIP' if clip else 'likelihood'}" if c > 1 else ""
    print(f"{n} images for {args.prompt!r} (guidance {args.guidance:g}, temperature {args.temperature:g}{best}) -> {args.out}")
    return Path(args.out)


def evaluate(args: argparse.Namespace, per_prompt: int = 4) -> dict:
    """``vqvae eval DALLE_RUN --classifier READER``: prompt faithfulness of ``-n`` samples (``per_prompt`` per caption of the split)."""
    if not args.classifier:
        raise VQVAEError("a DALL-E run is scored by a scene reader: pass --classifier READER_RUN (vqvae classifier train --data scenes)")
    if args.samples < per_prompt:
        raise VQVAEError(f"-n/--samples must be >= {per_prompt} (samples per prompt), got {args.samples}")
    cfg, model, text, tok = load_dalle(args.run)
    reader = load_reader(args.classifier)
    clip = load_clip(args.clip) if args.clip else None
    n_train = scenes.parse_name(cfg.data.name)
    if n_train is None:
        raise VQVAEError(f"prompt faithfulness is read from the captioned scenes; {args.run} was trained on {cfg.data.name}")
    captions, attrs = t2i_eval.prompts(n_train, args.split, args.samples // per_prompt, args.data_root or cfg.data.root)
    c, g = args.candidates, args.guidance
    acc, _ = t2i_eval.faithfulness(model, text, tok, reader, captions, attrs, per_prompt, guidance=g, seed=args.seed, candidates=c,
                                   clip=clip, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    m = {"run": str(args.run), "reader": str(args.classifier), "split": args.split, "guidance": g, "candidates": c,
         "reranker": (str(args.clip) if clip else "likelihood") if c > 1 else None, **acc}
    ranked = f", the best {per_prompt} of {per_prompt * c} per caption by {'CLIP' if clip else 'likelihood'}" if c > 1 else ""
    print(json.dumps(m, indent=2) if args.json else
          f"{args.split}: {acc['all']:.1%} of {acc['samples']} samples faithful to their caption (position {acc['position']:.1%}, "
          f"class {acc['class']:.1%}, colour {acc['colour']:.1%}, size {acc['size']:.1%}; guidance {g:g}{ranked})")
    return m
