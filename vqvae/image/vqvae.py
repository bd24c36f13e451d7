"""The VQ-VAE (van den Oord et al., 2017) for images.

``x (uint8, B x C x H x W) -> encoder -> z_e (B x D x h x w) -> quantizer ->
z_q -> decoder -> p(x | z_q)``, with ``h = H / 2^n``. The model takes its
whole :class:`VQVAEConfig` (nanoGPT style); run directories store that config
so ``encode``/``decode`` need nothing else.

Training objective (paper, eq. 3), per batch::

    log p(x | z_q) term + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2

where the first is MSE or the 256-way cross-entropy (:mod:`vqvae.image.likelihoods`) and
the codebook term is replaced by EMA updates for ``quantizer: ema``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from vqvae.image import likelihoods
from vqvae.core.errors import ConfigError, require
from vqvae.nets.image import ImageDecoder, ImageEncoder
from vqvae.quantize.factory import LAYOUTS, make_quantizer
from vqvae.quantize.vq import QUANTIZERS, QuantizerOutput


@dataclass
class VQVAEConfig:
    """Architecture and quantizer of an image VQ-VAE. Defaults: the paper's CIFAR net."""

    QUANTIZER_KINDS: ClassVar[tuple[str, ...]] = tuple(QUANTIZERS)  # what model.quantizer may be (the dVAE: gumbel)

    in_channels: int = 0  # 0: taken from the data (1 grey, 3 RGB)
    hidden: int = 256
    res_hidden: int = 256
    num_res_blocks: int = 2
    num_downsamples: int = 2
    codebook_size: int = 512
    embedding_dim: int = 64
    num_codebooks: int = 1  # G codebooks per latent position (the paper's CIFAR latents are 8x8x10)
    codebook_layout: str = "grouped"  # G > 1: "grouped" (one codebook per D-slice) or "residual" (G residual stages)
    quantizer_dropout: float = 0.0  # residual: probability a sample trains with only its first U{1..G} stages
    commitment_cost: float = 0.25
    quantizer: str = "ema"  # "vq" (paper, gradient codebook) or "ema" (appendix A.1)
    decay: float = 0.99
    kmeans_init: bool = False
    kmeans_batches: int = 1
    kmeans_iters: int = 10
    restart_after: int = 0  # restart codes unused for this many steps; 0 = never
    likelihood: str = "mse"  # "mse" or "categorical" (256-way softmax per sub-pixel)

    def validate(self) -> None:
        checks = [
            (self.in_channels in (0, 1, 3), "model.in_channels must be 0 (from data), 1 or 3"),
            (self.hidden >= 1 and self.res_hidden >= 1, "model.hidden and model.res_hidden must be >= 1"),
            (self.num_res_blocks >= 0, "model.num_res_blocks must be >= 0"),
            (1 <= self.num_downsamples <= 6, "model.num_downsamples must be in 1..6"),
            (2 <= self.codebook_size <= 2**20, "model.codebook_size must be in 2..1048576"),
            (self.embedding_dim >= 1, "model.embedding_dim must be >= 1"),
            (1 <= self.num_codebooks <= 64, "model.num_codebooks must be in 1..64"),
            (self.codebook_layout in LAYOUTS, f"model.codebook_layout must be one of {LAYOUTS}"),
            (0.0 <= self.quantizer_dropout <= 1.0, "model.quantizer_dropout must be in [0, 1]"),
            (self.commitment_cost >= 0, "model.commitment_cost must be >= 0"),
            (self.quantizer in self.QUANTIZER_KINDS, f"model.quantizer must be one of {sorted(self.QUANTIZER_KINDS)}"),
            (0.0 < self.decay < 1.0, "model.decay must be in (0, 1)"),
            (self.kmeans_batches >= 1 and self.kmeans_iters >= 1, "model.kmeans_batches and model.kmeans_iters must be >= 1"),
            (self.restart_after >= 0, "model.restart_after must be >= 0"),
            (self.likelihood in likelihoods.LIKELIHOODS, f"model.likelihood must be one of {list(likelihoods.LIKELIHOODS)}"),
        ]
        require(checks)

    @property
    def downsampling(self) -> int:
        return 2**self.num_downsamples

    def code_shape(self, height: int, width: int) -> tuple[int, ...]:
        """Shape of one image's code map: ``(h, w)``, or ``(G, h, w)`` with G codebooks."""
        h, w = -(-height // self.downsampling), -(-width // self.downsampling)
        return (h, w) if self.num_codebooks == 1 else (self.num_codebooks, h, w)


@dataclass
class VQVAEOutput:
    """Named outputs of :meth:`VQVAE.forward`.

    out: decoder output (``(B, C, H, W)`` in [-0.5, 0.5] scale for MSE, logits
        ``(B, C, 256, H, W)`` for the categorical likelihood).
    loss: total loss (reconstruction + quantizer).
    recon_loss: the reconstruction term alone.
    vq: the quantizer's output (indices, losses, perplexity, usage).
    """

    out: torch.Tensor
    loss: torch.Tensor
    recon_loss: torch.Tensor
    vq: QuantizerOutput


class VQVAE(nn.Module):
    config_cls = VQVAEConfig

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        config.validate()
        if config.in_channels == 0:
            raise ConfigError("model.in_channels is 0: set it to 1 or 3 (training fills it in from the data)")
        self.config = config
        c = config
        bins = likelihoods.OUT_BINS[c.likelihood]
        zdim = c.embedding_dim * (c.num_codebooks if c.codebook_layout == "grouped" else 1)
        self.encoder, self.decoder = self._make_nets(self._encoder_channels(), zdim, bins)
        self.quantizer = self._make_quantizer()

    def _make_nets(self, enc_out: int, zdim: int, bins: int) -> tuple[nn.Module, nn.Module]:
        """The encoder (to ``enc_out`` channels) and decoder (from ``zdim``, to ``C * bins``): the paper's conv nets."""
        c = self.config
        return (ImageEncoder(c.in_channels, c.hidden, c.res_hidden, c.num_res_blocks, c.num_downsamples, enc_out),
                ImageDecoder(c.in_channels, c.hidden, c.res_hidden, c.num_res_blocks, c.num_downsamples, zdim, bins))

    def _encoder_channels(self) -> int:
        """What the encoder emits: ``D`` (``G * D`` for grouped codebooks) vectors to quantize."""
        c = self.config
        return c.embedding_dim * (c.num_codebooks if c.codebook_layout == "grouped" else 1)

    def _make_quantizer(self) -> nn.Module:
        c = self.config
        kw = dict(
            commitment_cost=c.commitment_cost,
            kmeans_init=c.kmeans_init,
            kmeans_batches=c.kmeans_batches,
            kmeans_iters=c.kmeans_iters,
            restart_after=c.restart_after,
        )
        if c.quantizer == "ema":
            kw["decay"] = c.decay
        return make_quantizer(c.quantizer, c.codebook_size, c.embedding_dim, c.num_codebooks, c.codebook_layout,
                              c.quantizer_dropout, **kw)

    def _check_images(self, x: torch.Tensor) -> None:
        f = self.config.downsampling
        if x.ndim != 4 or x.shape[1] != self.config.in_channels or x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"expected uint8 images (B, {self.config.in_channels}, H, W) with H, W divisible by {f}, got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        """Training/evaluation pass on uint8 images ``(B, C, H, W)``."""
        self._check_images(x)
        vq = self.quantizer(self.encoder(likelihoods.to_input(x)))
        out = self.decoder(vq.z_q)
        rec = likelihoods.recon_loss(self.config.likelihood, out, x)
        return VQVAEOutput(out=out, loss=rec + vq.loss, recon_loss=rec, vq=vq)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images ``(B, C, H, W)`` -> code indices ``(B, H/f, W/f)`` (or ``(B, G, H/f, W/f)``) int64."""
        self._check_images(x)
        return self.quantizer.quantize(self.encoder(likelihoods.to_input(x)))

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices ``(B, h, w)`` (or ``(B, G, h, w)``; residual layouts also take the first
        ``s <= G`` stages, a coarser image) -> uint8 images ``(B, C, h*f, w*f)``."""
        return likelihoods.reconstruct(self.config.likelihood, self.decoder(self.quantizer.lookup(indices)))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> uint8 reconstructions through the codes."""
        return self.decode(self.encode(x))
