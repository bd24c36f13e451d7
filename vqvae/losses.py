"""Reconstruction likelihoods p(x | z_q) and the bits/dim bound.

Images enter the models as uint8; the nets see ``x / 255 - 0.5``.

* ``mse``: a Gaussian decoder with fixed variance; the training loss is the
  mean squared error in that [-0.5, 0.5] scale. For bits/dim its negative
  log-likelihood is that of a discretised Gaussian whose variance is the
  maximum-likelihood one (the mean squared error of the evaluated set),
  ``0.5 log2(2 pi e sigma^2) - log2(1/255)`` bits per sub-pixel, capped at 8.
* ``categorical``: the paper's 256-way softmax per sub-pixel (decoder logits
  ``(B, C, 256, H, W)``); the loss is the cross-entropy in nats per sub-pixel.

Under the uniform prior used during training, the VQ-VAE bound is (paper,
section 3.2; the KL term is log K per latent)::

    bits/dim = (-log2 p(x | z_q) + N_latents * log2 K) / (C * H * W)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LIKELIHOODS = ("mse", "categorical")


def to_input(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-0.5, 0.5], the nets' input scale."""
    return x.float() / 255.0 - 0.5


def recon_loss(likelihood: str, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean training loss: MSE in [-0.5, 0.5] scale, or cross-entropy in nats/sub-pixel."""
    if likelihood == "mse":
        return F.mse_loss(out.float(), to_input(x))
    return F.cross_entropy(out.float().transpose(1, 2), x.long())


def reconstruct(likelihood: str, out: torch.Tensor) -> torch.Tensor:
    """Decoder output -> uint8 images. The categorical decoder gives its mean
    (the MSE-optimal point estimate) rather than its mode."""
    if likelihood == "mse":
        y = (out.float() + 0.5) * 255.0
    else:
        probs = out.float().softmax(2)
        levels = torch.arange(out.shape[2], device=out.device, dtype=torch.float32)
        y = torch.einsum("bclhw,l->bchw", probs, levels)
    return y.round().clamp(0, 255).to(torch.uint8)


def categorical_nll_bits(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image ``-log2 p(x | z_q)`` in bits under the 256-way softmax, ``(B,)``."""
    ce = F.cross_entropy(logits.float().transpose(1, 2), x.long(), reduction="none")
    return ce.flatten(1).sum(1) / math.log(2)


def gaussian_bits_per_subpixel(mse_01: float) -> float:
    """Bits per sub-pixel of a discretised Gaussian with sigma^2 = mse (in [0, 1]
    scale), bin width 1/255; capped at 8 bits (a uniform code)."""
    if mse_01 <= 0:
        return 0.0
    bits = 0.5 * math.log2(2 * math.pi * math.e * mse_01) + math.log2(255)
    return float(min(max(bits, 0.0), 8.0))


def bits_per_dim(recon_bits_per_subpixel: float, n_latents: int, codebook_size: int, subpixels: int) -> float:
    """Uniform-prior bound: reconstruction bits plus log2 K per latent, per sub-pixel."""
    return recon_bits_per_subpixel + n_latents * math.log2(codebook_size) / subpixels
