"""DALL-E's discrete VAE (Ramesh et al., 2021, "Zero-Shot Text-to-Image Generation", section 2.1).

The encoder outputs logits over ``K`` codes at each latent position; training
passes a Gumbel-softmax relaxation of the posterior to the decoder, with the
temperature annealed from 1 to 1/16, and adds the KL to the uniform prior with
a weight ramped up to its target; the likelihood is the logit-Laplace
(``eps = 0.1``); evaluation and encoding take the argmax codes. See
:mod:`vqvae.quantize.gumbel` and :mod:`vqvae.image.likelihoods`.

It is a :class:`~vqvae.image.vqvae.VQVAE` with another bottleneck and
likelihood, so it honours the same contract (``encode``/``decode``/
``reconstruct``, run directories, ``eval``, the priors): every later stage
accepts either tokenizer. ``net="dalle"`` builds DALL-E's deep residual
encoder and decoder (:mod:`vqvae.nets.dvae`, width ``hidden``,
``n_blk_per_group`` blocks per group); ``net="vqvae"`` (the default) the
VQ-VAE paper's conv nets, which train faster on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from vqvae.core.errors import ConfigError, require
from vqvae.image.vqvae import VQVAE, VQVAEConfig
from vqvae.nets.dvae import DalleDecoder, DalleEncoder
from vqvae.quantize.gumbel import GumbelQuantizer


@dataclass
class DVAEConfig(VQVAEConfig):
    """A dVAE: K = 8192 codes and the logit-Laplace likelihood by default (DALL-E's), and the schedules."""

    QUANTIZER_KINDS: ClassVar[tuple[str, ...]] = ("gumbel",)

    codebook_size: int = 8192
    likelihood: str = "logit-laplace"
    quantizer: str = "gumbel"  # the Gumbel-softmax bottleneck (the only kind)
    tau_start: float = 1.0
    tau_end: float = 1 / 16
    tau_steps: int = 150_000  # DALL-E anneals over the first 150k updates
    kl_weight: float = 6.6  # DALL-E's final beta (both terms summed over the image; see vqvae.quantize.gumbel)
    kl_steps: int = 5_000  # DALL-E ramps beta over the first 5000 updates
    net: str = "vqvae"  # "vqvae" (the paper's conv nets) or "dalle" (DALL-E's residual nets, vqvae.nets.dvae)
    n_blk_per_group: int = 2  # net=dalle: blocks per group (DALL-E: 2, width hidden = 256)

    def validate(self) -> None:
        if self.num_codebooks != 1:
            raise ConfigError("a dvae has one codebook (model.num_codebooks=1)")
        checks = [
            (0 < self.tau_end <= self.tau_start, "model.tau_end must be in (0, model.tau_start]"),
            (self.tau_steps >= 0 and self.kl_steps >= 0, "model.tau_steps and model.kl_steps must be >= 0"),
            (self.kl_weight >= 0, "model.kl_weight must be >= 0"),
            (self.net in ("vqvae", "dalle"), f"model.net must be 'vqvae' or 'dalle', got {self.net!r}"),
            (self.n_blk_per_group >= 1, "model.n_blk_per_group must be >= 1"),
        ]
        require(checks)
        super().validate()


class DVAE(VQVAE):
    config_cls = DVAEConfig

    def _encoder_channels(self) -> int:
        return self.config.codebook_size  # logits over the K codes

    def _make_nets(self, enc_out: int, zdim: int, bins: int) -> tuple[nn.Module, nn.Module]:
        c = self.config
        if c.net == "vqvae":
            return super()._make_nets(enc_out, zdim, bins)
        return (DalleEncoder(c.in_channels, c.hidden, c.n_blk_per_group, c.num_downsamples, enc_out),
                DalleDecoder(c.in_channels, c.hidden, c.n_blk_per_group, c.num_downsamples, zdim, bins))

    def _make_quantizer(self) -> nn.Module:
        c = self.config
        return GumbelQuantizer(c.codebook_size, c.embedding_dim, c.tau_start, c.tau_end, c.tau_steps, c.kl_weight, c.kl_steps,
                               kl_scale=1.0 / (c.downsampling**2 * c.in_channels))
