"""Drawing from a prior: the labels of a grid of samples, and sampled codes decoded by the tokenizer.

The tokenizer's own task renders the codes (:meth:`vqvae.core.task.TokenizerTask.render`): a PNG grid for image
tokenizers, wav files for audio ones, so this module knows neither.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vqvae import registry
from vqvae.core.errors import VQVAEError
from vqvae.core.files import atomic_write_with
from vqvae.core.task import tokenizer_task
from vqvae.core.train import pick_device
from vqvae.priors import codes


def sample_labels(num_classes: int, n: int, label: int | None) -> tuple[torch.Tensor | None, int]:
    """Labels of ``n`` samples and the grid's row length: one class (``label``), or for a
    conditional prior rows of classes 0, 1, 2, ..., or ``None`` (unconditional)."""
    c = num_classes
    if label is None:
        if not c:
            return None, 8
        per = -(-n // c)
        return (torch.arange(n) // per).clamp(max=c - 1), per
    if not c:
        raise VQVAEError("--label given, but this prior is unconditional (train it with --conditional)")
    if not 0 <= label < c:
        raise VQVAEError(f"--label must be in [0, {c}) for this prior, got {label}")
    return torch.full((n,), label, dtype=torch.long), 8


def draw(model, tok_arch: str, tok, n: int, label: int | None, out, gen: torch.Generator, voice: int | None = None,
         **filters) -> torch.Tensor:
    """Sample ``n`` code maps (``filters``: temperature, top_k, top_p, guidance) and have the tokenizer render them into ``out``;
    audio samples speak in the voice of their labels (a speaker-conditional prior) or ``voice``. Returns the codes."""
    labels, nrow = sample_labels(model.config.num_classes, n, label)
    dev = next(model.parameters()).device
    z = model.sample(n, None if labels is None else labels.to(dev), generator=gen, **filters)
    tokenizer_task(tok_arch, "the prior's tokenizer").render(tok, z, out, labels, nrow, voice)
    return z


def sampling_filters(model_cfg, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, guidance: float = 1.0) -> dict:
    """The keyword arguments of a prior's ``sample`` for these options; guidance only where the prior was trained for
    it (a one-line error otherwise)."""
    filters = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    if guidance != 1.0:
        if guidance < 0:
            raise VQVAEError(f"--guidance must be >= 0, got {guidance}")
        if not getattr(model_cfg, "label_dropout", 0.0):
            raise VQVAEError("--guidance needs a transformer prior trained with --model.label_dropout > 0 (classifier-free guidance)")
        filters["guidance"] = guidance
    return filters


def check_sampling(n: int, temperature: float, top_k: int, top_p: float, least: int = 1, flag: str = "-n") -> None:
    """Sampling options, checked before any work: a one-line error naming the bad one."""
    if n < least:
        raise VQVAEError(f"{flag} must be >= {least}, got {n}")
    if temperature <= 0:
        raise VQVAEError(f"--temperature must be > 0, got {temperature}")
    if top_k < 0 or not 0 < top_p <= 1:
        raise VQVAEError(f"--top-k must be >= 0 and --top-p in (0, 1], got {top_k}, {top_p}")


def sample_run(prior: str | Path, n: int, out: str | Path | None = None, label: int | None = None, speaker: str | None = None, seed: int = 0,
               device: str = "auto", save_codes: str | Path | None = None, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0, guidance: float = 1.0) -> Path:
    """``vqvae sample``: ``n`` samples of a prior run rendered by its tokenizer into ``out`` (a grid, or wavs in the voice
    of ``speaker``, which is also the class of a speaker-conditional prior; default ``samples.png`` or ``samples/``); the
    codes saved to ``save_codes`` too. Returns where the samples went."""
    check_sampling(n, temperature, top_k, top_p)
    cfg, model, tok_cfg, tok = codes.load_prior(prior, device=pick_device(device))
    voice = None
    if speaker is not None:
        voice = tokenizer_task(tok_cfg.arch, "the prior's tokenizer").voice(tok_cfg, speaker)
        if cfg.model.num_classes:
            label = voice
    out = out or registry.task_for(tok_cfg.arch).preview[0]  # samples.png, or a folder of wavs
    z = draw(model, tok_cfg.arch, tok, n, label, out, torch.Generator().manual_seed(seed), voice=voice,
             **sampling_filters(cfg.model, temperature, top_k, top_p, guidance))
    if save_codes:
        arr = z.cpu().numpy().astype(np.int16 if cfg.model.codebook_size <= 2**15 else np.int32)
        dest = Path(save_codes) if str(save_codes).endswith(".npy") else Path(f"{save_codes}.npy")  # as np.save names it
        atomic_write_with(dest, lambda f: np.save(f, arr))
    return Path(out)
