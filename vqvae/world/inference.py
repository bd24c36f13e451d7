"""Using a second stage: frames -> first-stage codes -> three latents -> code maps drawn by the PixelCNN decoder ->
frames; and the picture of it (originals, first-stage reconstructions, three second-stage samples)."""

from __future__ import annotations

from pathlib import Path

import torch

from vqvae.core import plots
from vqvae.core.task import load_split, tokenizer_task


def spread(n: int, k: int) -> torch.Tensor:
    """``k`` indices spread evenly over ``0 .. n - 1``."""
    return torch.linspace(0, n - 1, min(k, n)).round().long()


def test_frames(tok_cfg, data_root: str | None = None) -> torch.Tensor:
    """The tokenizer's test images (uint8), in the order of its cached test codes."""
    return load_split(tok_cfg, "test", data_root).images


@torch.no_grad()
def encode_frames(model, tok_cfg, tok, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 frames ``(B, 3, H, W)`` -> (first-stage code maps ``(B, h, w)``, latents ``(B, G)``)."""
    dev = next(model.parameters()).device
    codes = torch.from_numpy(tokenizer_task(tok_cfg.arch, "the tokenizer").encode(tok, frames)).to(dev)
    return codes, model.encode(codes)


@torch.no_grad()
def decode_latents(model, tok_cfg, tok, latents: torch.Tensor, generator: torch.Generator | None = None,
                   temperature: float = 1.0) -> torch.Tensor:
    """Latents ``(B, G)`` -> code maps drawn by the PixelCNN decoder -> uint8 frames through the tokenizer's decoder."""
    codes = model.decode(latents, generator, temperature)
    return tokenizer_task(tok_cfg.arch, "the tokenizer").decode(tok, codes.cpu())


@torch.no_grad()
def reconstruct_frames(model, tok_cfg, tok, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 frames -> their second-stage reconstructions (one draw of the decoder given each frame's latents)."""
    _, latents = encode_frames(model, tok_cfg, tok, frames)
    return decode_latents(model, tok_cfg, tok, latents, generator)


@torch.no_grad()
def stage2_figure(model, tok_cfg, tok, frames: torch.Tensor, codes: torch.Tensor, path: str | Path,
                  generator: torch.Generator | None = None, samples: int = 3) -> None:
    """Rows: the frames, their first-stage reconstructions (decoded codes), and ``samples`` second-stage
    reconstructions (code maps drawn given each frame's three latents)."""
    task = tokenizer_task(tok_cfg.arch, "the tokenizer")
    dev = next(model.parameters()).device
    latents = model.encode(codes.to(dev))
    rows = [frames, task.decode(tok, codes)]
    rows += [decode_latents(model, tok_cfg, tok, latents, generator) for _ in range(samples)]
    plots.save_grid(torch.cat(rows), path, nrow=frames.shape[0], scale=2)
