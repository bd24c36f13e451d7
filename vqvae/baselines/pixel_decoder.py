"""A powerful autoregressive decoder for the posterior-collapse study: a gated PixelCNN over the pixels, conditioned
on the latents.

``p(x | z) = prod_(i, j) p(x_ij | x_<ij, z)`` over the 256 values of a grey image's pixels, with the gated PixelCNN
of :mod:`vqvae.priors.pixelcnn` (no blind spot; pixels play the part of codes, K = 256). Every layer is conditioned
on a feature map of the latents at the image's resolution (the paper's decoder net applied to ``z``), added to both
stacks' pre-activations where the class-conditional PixelCNN adds its class embedding: van den Oord et al. (2016),
"Conditional Image Generation with PixelCNN Decoders", section 2.3 (a spatial conditioning map ``s = m(h)`` through
1 x 1 convolutions). Such a decoder can model the images on its own, which is what tempts a VAE to ignore its
latents (Bowman et al. 2016; Chen et al. 2017): van den Oord et al. (2017) claim the VQ-VAE does not.
"""

from __future__ import annotations

import torch
from torch import nn

from vqvae.priors.pixelcnn import PixelCNNConfig, PixelCNNPrior
from vqvae.priors.sequence import sample_from


class PixelDecoder(PixelCNNPrior):
    """Logits ``(B, 1, V, H, W)`` of maps ``(B, 1, H, W)`` of ``values`` (V) values given conditioning features
    ``(B, F, H, W)`` (teacher forcing: one pass), and ancestral sampling of maps given features. ``V = 256``: grey
    uint8 images; the world family's second stage models first-stage code maps with ``V = K``."""

    def __init__(self, cond_channels: int, channels: int, layers: int, values: int = 256):
        # The map's size comes from the images (the convolutions do not depend on it): height and width are unused.
        super().__init__(PixelCNNConfig(codebook_size=values, height=1, width=1, channels=channels, layers=layers,
                                        out_hidden=4 * channels))
        self.cond_proj = nn.ModuleList(nn.Conv2d(cond_channels, 2 * channels, 1) for _ in range(layers))

    def _conds(self, feats: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer spatial biases ``(B, 2C, H, W)`` from the latents' features (instead of a class embedding)."""
        return [proj(feats) for proj in self.cond_proj]

    def logits(self, x: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-2:] != feats.shape[-2:]:
            raise ValueError(f"expected maps (B, 1, H, W) at the features' {tuple(feats.shape[-2:])}, got {tuple(x.shape)}")
        return self._logits_map(x.long(), feats).unsqueeze(1)

    @torch.no_grad()
    def sample_values(self, feats: torch.Tensor, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """int64 maps ``(B, 1, H, W)`` drawn value by value in raster order given features ``(B, F, H, W)`` (a full
        pass per position: for small maps)."""
        b, _, h, w = feats.shape
        x = torch.zeros(b, 1, h, w, dtype=torch.long, device=feats.device)
        for i in range(h):  # row i depends on rows 0..i only (the stacks are causal): the pass stops there
            for j in range(w):
                logits = self._logits_map(x[:, :, : i + 1], feats[:, :, : i + 1])[:, :, i, j]
                x[:, 0, i, j] = sample_from(logits, generator, temperature=temperature)
        return x

    @torch.no_grad()
    def sample_pixels(self, feats: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Grey uint8 images ``(B, 1, H, W)`` drawn pixel by pixel given features (:meth:`sample_values`)."""
        return self.sample_values(feats, generator).to(torch.uint8)
