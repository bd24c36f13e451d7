"""Reconstruction likelihoods p(x | z_q) and the bits/dim bound.

Images enter the models as uint8; the nets see ``x / 255 - 0.5``.

* ``mse``: a Gaussian decoder with fixed variance; the training loss is the
  mean squared error in that [-0.5, 0.5] scale. For bits/dim its negative
  log-likelihood is that of a discretised Gaussian whose variance is the
  maximum-likelihood one (the mean squared error of the evaluated set),
  ``0.5 log2(2 pi e sigma^2) - log2(1/255)`` bits per sub-pixel, capped at 8.
* ``categorical``: the paper's 256-way softmax per sub-pixel (decoder logits
  ``(B, C, 256, H, W)``); the loss is the cross-entropy in nats per sub-pixel.
* ``logit-laplace``: DALL-E's likelihood (Ramesh et al. 2021, section A.3).
  Pixels are mapped into ``(eps, 1 - eps)``, ``eps = 0.1``
  (:func:`map_pixels`), and modelled by the density
  ``p(y) = exp(-|logit(y) - mu| / b) / (2 b y (1 - y))``; the decoder outputs
  ``(B, C, 2, H, W)``: ``mu`` and ``log b``. The loss is the NLL in nats per
  sub-pixel; the reconstruction is ``unmap(sigmoid(mu))``. Its bits/dim uses
  the density times the bin width ``(1 - 2 eps) / 255``.

Under the uniform prior used during training, the VQ-VAE bound is (paper,
section 3.2; the KL term is log K per latent)::

    bits/dim = (-log2 p(x | z_q) + N_latents * log2 K) / (C * H * W)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LIKELIHOODS = ("mse", "categorical", "logit-laplace")
OUT_BINS = {"mse": 1, "categorical": 256, "logit-laplace": 2}  # decoder outputs per sub-pixel
LAPLACE_EPS = 0.1


def map_pixels(x01: torch.Tensor, eps: float = LAPLACE_EPS) -> torch.Tensor:
    """[0, 1] -> [eps, 1 - eps] (DALL-E's ``map_pixels``), so the logit stays finite."""
    return (1 - 2 * eps) * x01 + eps


def unmap_pixels(y: torch.Tensor, eps: float = LAPLACE_EPS) -> torch.Tensor:
    return ((y - eps) / (1 - 2 * eps)).clamp(0, 1)


def logit_laplace_nll(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sub-pixel NLL (nats) of uint8 ``x`` under decoder output ``(B, C, 2, H, W)``, shape ``(B, C, H, W)``."""
    mu, log_b = out.float()[:, :, 0], out.float()[:, :, 1].clamp(-8, 8)
    y = map_pixels(x.float() / 255.0)
    logit = torch.log(y) - torch.log1p(-y)
    return (logit - mu).abs() * torch.exp(-log_b) + log_b + math.log(2) + torch.log(y) + torch.log1p(-y)


def to_input(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-0.5, 0.5], the nets' input scale."""
    return x.float() / 255.0 - 0.5


def recon_loss(likelihood: str, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean training loss: MSE in [-0.5, 0.5] scale, or cross-entropy in nats/sub-pixel."""
    if likelihood == "mse":
        return F.mse_loss(out.float(), to_input(x))
    if likelihood == "logit-laplace":
        return logit_laplace_nll(out, x).mean()
    return F.cross_entropy(out.float().transpose(1, 2), x.long())


def reconstruct(likelihood: str, out: torch.Tensor) -> torch.Tensor:
    """Decoder output -> uint8 images. The categorical decoder gives its mean
    (the MSE-optimal point estimate) rather than its mode."""
    if likelihood == "mse":
        y = (out.float() + 0.5) * 255.0
    elif likelihood == "logit-laplace":
        y = unmap_pixels(torch.sigmoid(out.float()[:, :, 0])) * 255.0
    else:
        probs = out.float().softmax(2)
        levels = torch.arange(out.shape[2], device=out.device, dtype=torch.float32)
        y = torch.einsum("bclhw,l->bchw", probs, levels)
    return y.round().clamp(0, 255).to(torch.uint8)


def categorical_nll_bits(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image ``-log2 p(x | z_q)`` in bits under the 256-way softmax, ``(B,)``."""
    ce = F.cross_entropy(logits.float().transpose(1, 2), x.long(), reduction="none")
    return ce.flatten(1).sum(1) / math.log(2)


def logit_laplace_nll_bits(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image ``-log2 p(x | z)`` in bits: the density at each mapped pixel times the bin width, ``(B,)``."""
    bin_width = (1 - 2 * LAPLACE_EPS) / 255.0
    nats = logit_laplace_nll(out, x) - math.log(bin_width)
    return nats.clamp(min=0).flatten(1).sum(1) / math.log(2)


NLL_BITS = {"categorical": categorical_nll_bits, "logit-laplace": logit_laplace_nll_bits}  # the discrete likelihoods


def nll_nats_per_image(likelihood: str, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``-log p(x | z)`` per image in nats, ``(B,)``, differentiable: the likelihoods that assign uint8 images a
    probability (``categorical``, ``logit-laplace``); ``mse`` has none (its bits/dim fits the variance afterwards)."""
    if likelihood not in NLL_BITS:
        raise ValueError(f"likelihood {likelihood!r} gives no per-image probability; use one of {sorted(NLL_BITS)}")
    return NLL_BITS[likelihood](out, x) * math.log(2)


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
