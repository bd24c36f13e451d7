"""Prompt faithfulness of DALL-E's samples (issue 5), read by the project's scene reader.

For each caption of a scenes split (``heldout``: every caption names at least
one colour-class pair never seen in training; ``test``: seen pairs only), the
transformer draws ``per_prompt`` images; the reader (:mod:`vqvae.text2image.scene_reader`)
reads the layout and each object's class, colour and size back, and a sample
is *faithful* when all of them match its caption
(:func:`vqvae.data.scenes.attribute_accuracy`). Two ceilings put the figure in
context: the reader's accuracy on the real scenes of the split, and on the
tokenizer's reconstructions of them (what an average real scene scores
through this tokenizer).

:func:`draw` also reranks as DALL-E does: with ``candidates = C`` it draws C
images for each one kept and keeps the best by a CLIP (:func:`vqvae.text2image.loading.load_clip`) or
by the transformer's likelihood; the reader never ranks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from vqvae.core.errors import VQVAEError
from vqvae.data import scenes
from vqvae.image import inference
from vqvae.text2image.loading import ClipScorer


@dataclass
class Drawn:
    """What :func:`draw` returns: the kept ``images`` (uint8, caption-major); every drawn candidate, its codes and
    its ranking score (empty without reranking); and the indices of the kept ones (``candidates[kept] == images``)."""

    images: torch.Tensor
    candidates: torch.Tensor
    codes: torch.Tensor
    scores: torch.Tensor
    kept: torch.Tensor


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
         top_k: int = 0, top_p: float = 1.0, seed: int = 0, batch: int = 256, progress: bool = False, candidates: int = 1,
         clip: ClipScorer | None = None) -> Drawn:
    """``per_prompt`` images for each caption (caption-major), as a :class:`Drawn`.

    With ``candidates = c > 1`` it draws ``c * per_prompt`` images per caption and keeps the ``per_prompt`` ranked
    highest (DALL-E's reranking): by ``clip`` (:func:`vqvae.text2image.loading.load_clip`), else by the transformer's own
    :meth:`~vqvae.text2image.dalle.Dalle.image_log_prob`, the log-likelihood of the codes given the caption.
    """
    if candidates < 1 or per_prompt < 1:
        raise VQVAEError(f"-n (images per caption) and --candidates must be >= 1, got {per_prompt} and {candidates}")
    if clip is not None and candidates == 1:
        raise VQVAEError("--clip ranks candidates: pass --candidates C > 1 with it")
    dev = next(model.parameters()).device
    n = per_prompt * candidates
    caps = [c for c in captions for _ in range(n)]
    ids = torch.stack([text.encode(c, warn=False) for c in captions]).repeat_interleave(n, 0)
    gen = torch.Generator().manual_seed(seed)
    codes, images, score = [], [], []
    for s in tqdm(range(0, ids.shape[0], batch), desc="sampling", disable=not progress, leave=False):
        t = ids[s : s + batch].to(dev)
        z = model.generate(t, guidance=guidance, temperature=temperature, top_k=top_k, top_p=top_p, generator=gen)
        codes.append(z.cpu())
        images.append(inference.decode(tok, codes[-1]))
        if candidates > 1:
            score.append(clip.score(images[-1], caps[s : s + batch]) if clip is not None else model.image_log_prob(t, z).cpu())
    codes, images = torch.cat(codes), torch.cat(images)
    score = torch.cat(score) if score else torch.empty(0)
    keep = torch.arange(codes.shape[0])
    if candidates > 1:
        best = score.view(len(captions), n).topk(per_prompt, dim=1).indices.sort(dim=1).values
        keep = (best + n * torch.arange(len(captions))[:, None]).reshape(-1)
    return Drawn(images=images[keep], candidates=images, codes=codes, scores=score, kept=keep)


def faithfulness(model, text, tok, reader, captions: list[str], attrs: torch.Tensor, per_prompt: int = 4, **sampling) -> tuple[dict, torch.Tensor]:
    """``(accuracies, images)``: the fraction of kept samples with every attribute of their caption right, and per attribute.

    With ``candidates > 1`` (see :func:`draw`) ``accuracies["unranked"]`` reads every candidate as well: the
    same draw without reranking, over ``candidates`` times as many samples.
    """
    d = draw(model, text, tok, captions, per_prompt, **sampling)
    per = d.candidates.shape[0] // len(captions)
    pred, truth = reader.read(d.candidates), attrs.repeat_interleave(per, 0)  # every candidate read once; the kept are a subset
    acc = {**scenes.attribute_accuracy(pred[d.kept], truth[d.kept]), "samples": d.images.shape[0], "prompts": len(captions)}
    if per > per_prompt:
        acc["unranked"] = {**scenes.attribute_accuracy(pred, truth), "samples": d.candidates.shape[0]}
    return acc, d.images


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
