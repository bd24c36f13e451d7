"""Prompt faithfulness of DALL-E's samples (issue 5), read by the project's scene reader.

For each caption of a scenes split (``heldout``: every caption names at least
one colour-class pair never seen in training; ``test``: seen pairs only), the
transformer draws ``per_prompt`` images; the reader (:mod:`vqvae.models.scene_reader`)
reads the layout and each object's class, colour and size back, and a sample
is *faithful* when all of them match its caption
(:func:`vqvae.scenes.attribute_accuracy`). Two ceilings put the figure in
context: the reader's accuracy on the real scenes of the split, and on the
tokenizer's reconstructions of them (what any prior over these codes could
reach at best).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from vqvae import checkpoint, inference, scenes
from vqvae.errors import VQVAEError


def load_reader(run: str | Path | list, device="cpu"):
    """The scene reader in ``run``, or with a list of runs their :class:`~vqvae.models.scene_reader.ReaderEnsemble`
    (anything with ``read(images) -> labels``)."""
    from vqvae.models.scene_reader import ReaderEnsemble

    runs = [run] if isinstance(run, (str, Path)) else list(run)
    readers = []
    for r in runs:
        cfg, model = checkpoint.load_run(r, device=device)
        if cfg.arch != "scene-reader":
            raise VQVAEError(f"{r} is a {cfg.arch} run, not a scene reader (train one with: vqvae classifier train --data scenes)")
        readers.append(model)
    return readers[0] if len(readers) == 1 else ReaderEnsemble(readers)


def prompts(n_train: int, split: str, n: int, root: str | None = None) -> tuple[list[str], torch.Tensor]:
    """The first ``n`` captions of a scenes split and their attributes ``(n, 2, 4)``."""
    sc = scenes.scene_split(n_train, split, root)
    n = min(n, len(sc.captions))
    return sc.captions[:n], sc.attrs[:n]


def ceilings(reader, tok, n_train: int, split: str, root: str | None = None) -> dict:
    """The reader's accuracy on the real scenes of ``split`` and on the tokenizer's reconstructions of them."""
    sc = scenes.scene_split(n_train, split, root)
    recon = inference.decode(tok, inference.encode(tok, sc.images))
    return {"real": scenes.attribute_accuracy(reader.read(sc.images), sc.attrs),
            "reconstructed": scenes.attribute_accuracy(reader.read(recon), sc.attrs)}


def draw(model, text, tok, captions: list[str], per_prompt: int, guidance: float = 1.0, temperature: float = 1.0,
         top_k: int = 0, top_p: float = 1.0, seed: int = 0, batch: int = 256, progress: bool = False) -> torch.Tensor:
    """``per_prompt`` uint8 images for each caption, ``(len(captions) * per_prompt, C, H, W)`` (caption-major)."""
    from tqdm import tqdm

    dev = next(model.parameters()).device
    ids = torch.stack([text.encode(c, warn=False) for c in captions]).repeat_interleave(per_prompt, 0)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for s in tqdm(range(0, ids.shape[0], batch), desc="sampling", disable=not progress, leave=False):
        z = model.generate(ids[s : s + batch].to(dev), guidance=guidance, temperature=temperature, top_k=top_k, top_p=top_p, generator=gen)
        out.append(inference.decode(tok, z.cpu()))
    return torch.cat(out)


def faithfulness(model, text, tok, reader, captions: list[str], attrs: torch.Tensor, per_prompt: int = 4, **sampling) -> tuple[dict, torch.Tensor]:
    """``(accuracies, images)``: the fraction of samples with every attribute of their caption right, and per attribute."""
    images = draw(model, text, tok, captions, per_prompt, **sampling)
    acc = scenes.attribute_accuracy(reader.read(images), attrs.repeat_interleave(per_prompt, 0))
    return {**acc, "samples": images.shape[0], "prompts": len(captions)}, images


def sampling_speed(model, text, captions: list[str], use_cache: bool, repeats: int = 1) -> float:
    """Images per second of ``generate`` (codes only, no decoding) for a batch of captions, with or without the KV cache."""
    dev = next(model.parameters()).device
    ids = torch.stack([text.encode(c, warn=False) for c in captions]).to(dev)
    model.generate(ids[:2], use_cache=use_cache)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        model.generate(ids, use_cache=use_cache, generator=torch.Generator().manual_seed(0))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return repeats * ids.shape[0] / (time.perf_counter() - t0)
