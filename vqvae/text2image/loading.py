"""Loading the text-to-image runs: a DALL-E transformer with its BPE and tokenizer, the CLIP that reranks, the scene
reader that scores. Each checks that the run is what it is asked to be, with a one-line error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vqvae.core import checkpoint
from vqvae.core.errors import VQVAEError
from vqvae.priors.codes import load_prior
from vqvae.text2image.scene_reader import ReaderEnsemble
from vqvae.text2image.text import TextTokenizer

TEXT_FILE = "text.json"  # a run's own BPE


def load_dalle(run: str | Path, device="cpu"):
    """``(cfg, transformer, text tokenizer, tokenizer)`` of a DALL-E run, the tokenizer checked by fingerprint."""
    cfg, model, tok_cfg, tok = load_prior(run, device=device)
    if cfg.arch != "dalle":
        raise VQVAEError(f"{run} is a {cfg.arch} run, not a DALL-E transformer (train one with: vqvae dalle train --tokenizer RUN)")
    text = TextTokenizer.load(Path(run) / TEXT_FILE)
    if text.total_size != cfg.model.text_vocab or text.text_len != cfg.model.text_len:
        raise VQVAEError(f"{run}/{TEXT_FILE} does not match the transformer (vocabulary {text.total_size} vs {cfg.model.text_vocab}, "
                         f"length {text.text_len} vs {cfg.model.text_len}): the run was edited")
    return cfg, model, text, tok


def load_reader(run: str | Path | list, device="cpu"):
    """The scene reader in ``run``, or with a list of runs their :class:`~vqvae.text2image.scene_reader.ReaderEnsemble`
    (anything with ``read(images) -> labels``)."""
    runs = [run] if isinstance(run, (str, Path)) else list(run)
    readers = []
    for r in runs:
        cfg, model = checkpoint.load_run(r, device=device)
        if cfg.arch != "scene-reader":
            raise VQVAEError(f"{r} is a {cfg.arch} run, not a scene reader (train one with: vqvae classifier train --data scenes)")
        readers.append(model)
    return readers[0] if len(readers) == 1 else ReaderEnsemble(readers)


@dataclass
class ClipScorer:
    """A CLIP run (:mod:`vqvae.text2image.clip`) with its own text tokenizer: ``score(images, captions) -> (B,)``."""

    model: torch.nn.Module
    text: object

    def score(self, images: torch.Tensor, captions: list[str], batch: int = 512) -> torch.Tensor:
        dev = next(self.model.parameters()).device
        ids = torch.stack([self.text.encode(c, warn=False) for c in captions])
        return torch.cat([self.model.score(images[s : s + batch].to(dev), ids[s : s + batch].to(dev)).cpu()
                          for s in range(0, len(captions), batch)])


def load_clip(run: str | Path, device="cpu") -> ClipScorer:
    """The CLIP in ``run`` (``vqvae clip train``), ready to rank images against captions."""
    cfg, model = checkpoint.load_run(run, device=device)
    if cfg.arch != "clip":
        raise VQVAEError(f"{run} is a {cfg.arch} run, not a CLIP (train one with: vqvae clip train --data scenes)")
    return ClipScorer(model.eval(), TextTokenizer.load(Path(run) / TEXT_FILE))
