"""The paper's second-stage VQ-VAE (van den Oord et al. 2017, section 4.2): three latents over a code map.

"We train a second VQ-VAE with a PixelCNN decoder on top of the 21 x 21 x 1 latent space ... with only three latent
variables (each with K = 512 and their own embedding space)": the setup that "typically breaks VAEs as they suffer
from posterior collapse". Here:

* the **encoder** embeds a first-stage code map ``(B, h, w)`` (K values), runs two stride-2 convolutions and two
  residual blocks, pools to 3 x 3 and maps that to ``G x D`` numbers (G = ``latents``, 3), standardised over the
  batch (a batch norm without parameters). Why: with a decoder this strong, the cheapest way to a small commitment
  loss was an encoder whose output did not depend on its input (measured: every frame got the same three codes after
  500 steps, the decoder ignoring them); standardised outputs cannot all be equal, so the codes must tell frames apart;
* the **bottleneck** quantizes each D-slice with its own codebook of ``latent_codebook_size`` (a grouped quantizer,
  :func:`vqvae.quantize.factory.make_quantizer`), with the paper's ``||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2``
  (or the EMA codebook);
* the **decoder** is a gated PixelCNN over the first-stage codes (:class:`vqvae.baselines.pixel_decoder.PixelDecoder`
  with ``values = K``), conditioned at every layer on a ``cond_channels x h x w`` map that a linear layer and a
  3 x 3 convolution make from the three latents' embeddings.

The loss is the decoder's NLL of the codes (nats per code) plus the quantizer's terms. A decoder that ignored its
latents would model the codes on its own (posterior collapse); :meth:`Stage2.nll_bits` with another map's latents
measures how much it draws from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.baselines.pixel_decoder import PixelDecoder
from vqvae.core.errors import require
from vqvae.nets.blocks import ResidualStack
from vqvae.quantize.factory import make_quantizer


@dataclass
class Stage2Config:
    codebook_size: int = 512  # K of the first stage: the values of the modelled code maps (set from the tokenizer)
    height: int = 21  # the first stage's code map (set from the tokenizer)
    width: int = 21
    latents: int = 3  # G: the paper's three latent variables
    latent_codebook_size: int = 512  # each latent's K (its own codebook)
    latent_dim: int = 64  # each latent's embedding size D
    embed_dim: int = 64  # the encoder's embedding of first-stage codes
    hidden: int = 128  # the encoder's channels
    commitment_cost: float = 0.25
    quantizer: str = "ema"  # "vq" (gradient codebook) or "ema"
    kmeans_init: bool = True
    restart_after: int = 100  # a latent code unused for this many steps restarts at an encoder output (0: never)
    cond_channels: int = 32  # the conditioning map's channels
    pixel_channels: int = 64  # the PixelCNN decoder's channels
    pixel_layers: int = 8  # its gated layers

    def validate(self) -> None:
        require([
            (2 <= self.codebook_size <= 2**16, "model.codebook_size must be in 2..65536"),
            (self.height >= 4 and self.width >= 4, "model.height and model.width must be >= 4"),
            (1 <= self.latents <= 64, "model.latents must be in 1..64"),
            (2 <= self.latent_codebook_size <= 2**16, "model.latent_codebook_size must be in 2..65536"),
            (min(self.latent_dim, self.embed_dim, self.hidden, self.cond_channels, self.pixel_channels, self.pixel_layers) >= 1,
             "model sizes (latent_dim, embed_dim, hidden, cond_channels, pixel_channels, pixel_layers) must be >= 1"),
            (self.commitment_cost >= 0, "model.commitment_cost must be >= 0"),
            (self.restart_after >= 0, "model.restart_after must be >= 0"),
            (self.quantizer in ("vq", "ema"), f"model.quantizer must be 'vq' or 'ema', got {self.quantizer!r}"),
        ])


@dataclass
class Stage2Output:
    """loss: NLL nats per code + the quantizer's terms. nll_bits: ``-log2 p(codes | latents)`` per map ``(B,)``.
    latents: ``(B, G)`` int64. perplexity: of each latent's codes in the batch, averaged over the G latents."""

    loss: torch.Tensor
    nll_bits: torch.Tensor
    latents: torch.Tensor
    perplexity: torch.Tensor


class Stage2(nn.Module):
    """Code maps ``(B, h, w)`` (int64, values in ``[0, K)``) -> G latents -> a PixelCNN over the code maps."""

    config_cls = Stage2Config
    GRID = 3  # the encoder pools to GRID x GRID before its linear map to the latents
    COND_GRID = 6  # the latents' linear map makes a COND_GRID x COND_GRID map, resized to h x w

    def __init__(self, config: Stage2Config):
        super().__init__()
        config.validate()
        self.config = c = config
        g, d = c.latents, c.latent_dim
        self.embed = nn.Embedding(c.codebook_size, c.embed_dim)
        self.encoder = nn.Sequential(
            nn.Conv2d(c.embed_dim, c.hidden, 4, 2, 1), nn.ReLU(), nn.Conv2d(c.hidden, c.hidden, 4, 2, 1),
            ResidualStack(c.hidden, c.hidden, 2), nn.AdaptiveAvgPool2d(self.GRID), nn.Flatten(),
            nn.Linear(c.hidden * self.GRID**2, g * d), nn.BatchNorm1d(g * d, affine=False))
        self.quantizer = make_quantizer(c.quantizer, c.latent_codebook_size, d, g, commitment_cost=c.commitment_cost,
                                        kmeans_init=c.kmeans_init, restart_after=c.restart_after)
        self.cond_in = nn.Linear(g * d, c.cond_channels * self.COND_GRID**2)
        self.cond_out = nn.Sequential(nn.ReLU(), nn.Conv2d(c.cond_channels, c.cond_channels, 3, padding=1), nn.ReLU())
        self.pixelcnn = PixelDecoder(c.cond_channels, c.pixel_channels, c.pixel_layers, values=c.codebook_size)

    def _check(self, codes: torch.Tensor) -> None:
        c = self.config
        if codes.ndim != 3 or tuple(codes.shape[1:]) != (c.height, c.width) or codes.dtype != torch.long:
            raise ValueError(f"expected int64 code maps (B, {c.height}, {c.width}), got {tuple(codes.shape)} {codes.dtype}")

    def z_e(self, codes: torch.Tensor) -> torch.Tensor:
        """The encoder's output ``(B, G * D, 1, 1)`` (a 1 x 1 map, so the grouped quantizer takes it as images)."""
        return self.encoder(self.embed(codes).permute(0, 3, 1, 2))[:, :, None, None]

    def features(self, z_q: torch.Tensor) -> torch.Tensor:
        """The conditioning map ``(B, cond_channels, h, w)`` from the latents' embeddings ``(B, G * D, 1, 1)``."""
        c, n = self.config, self.COND_GRID
        m = self.cond_in(z_q.flatten(1)).view(-1, c.cond_channels, n, n)
        return self.cond_out(F.interpolate(m, size=(c.height, c.width), mode="bilinear", align_corners=False))

    def _nll_bits(self, codes: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
        logits = self.pixelcnn.logits(codes[:, None], self.features(z_q))[:, 0]  # (B, K, h, w)
        return F.cross_entropy(logits, codes, reduction="none").flatten(1).sum(1) / math.log(2)

    def forward(self, codes: torch.Tensor) -> Stage2Output:
        vq = self.quantizer(self.z_e(codes))
        nll = self._nll_bits(codes, vq.z_q)
        per_code = nll.mean() * math.log(2) / (self.config.height * self.config.width)
        return Stage2Output(loss=per_code + vq.loss, nll_bits=nll.detach(), latents=vq.indices.flatten(1),
                            perplexity=vq.perplexity.detach())

    @torch.no_grad()
    def encode(self, codes: torch.Tensor) -> torch.Tensor:
        """The G latents of each code map, ``(B, G)`` int64."""
        self._check(codes)
        return self.quantizer.quantize(self.z_e(codes)).flatten(1)

    def lookup(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, G)`` -> their embeddings ``(B, G * D, 1, 1)``."""
        return self.quantizer.lookup(latents[:, :, None, None])

    @torch.no_grad()
    def nll_bits(self, codes: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``-log2 p(codes | latents)`` per map ``(B,)``: the decoder's NLL of the code maps given any latents."""
        self._check(codes)
        return self._nll_bits(codes, self.lookup(latents))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """Code maps ``(B, h, w)`` drawn by the PixelCNN decoder given latents ``(B, G)`` (a pass per code)."""
        if latents.ndim != 2 or latents.shape[1] != self.config.latents:
            raise ValueError(f"expected latents (B, {self.config.latents}), got {tuple(latents.shape)}")
        return self.pixelcnn.sample_values(self.features(self.lookup(latents)), generator, temperature)[:, 0]
