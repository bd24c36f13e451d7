"""The paper's image encoder and decoder (VQ-VAE, section 4.1).

Encoder: ``num_downsamples`` convolutions of window 4x4 and stride 2 (ReLU
between them), two residual blocks (each starts with a ReLU), and a 1x1 projection to the codebook
dimension D. Images ``(B, C, H, W)`` map to ``(B, D, H / 2^n, W / 2^n)``.

Decoder: the mirror: a 3x3 conv from D, two residual blocks, and
``num_downsamples`` transposed convolutions of window 4x4 and stride 2. Its
last layer outputs ``C * out_bins`` channels: ``out_bins = 1`` for a
continuous (MSE) likelihood, 256 for the paper's per-sub-pixel softmax, whose
logits come back as ``(B, C, 256, H, W)``.
"""

from __future__ import annotations

import torch
from torch import nn

from vqvae.nets.blocks import ResidualStack, split_bins, strided_stack



class ImageEncoder(nn.Module):
    def __init__(self, in_channels: int, hidden: int, res_hidden: int, num_res_blocks: int, num_downsamples: int, embedding_dim: int):
        super().__init__()
        chans = [in_channels] + [hidden] * num_downsamples
        self.net = nn.Sequential(
            *strided_stack(nn.Conv2d, chans),
            ResidualStack(hidden, res_hidden, num_res_blocks),
            nn.Conv2d(hidden, embedding_dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ImageDecoder(nn.Module):
    def __init__(self, out_channels: int, hidden: int, res_hidden: int, num_res_blocks: int, num_downsamples: int, embedding_dim: int, out_bins: int = 1):
        super().__init__()
        self.out_channels = out_channels
        self.out_bins = out_bins
        chans = [hidden] * num_downsamples + [out_channels * out_bins]
        self.net = nn.Sequential(
            nn.Conv2d(embedding_dim, hidden, 3, padding=1),
            ResidualStack(hidden, res_hidden, num_res_blocks),
            *strided_stack(nn.ConvTranspose2d, chans),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)`` -> ``(B, C, H, W)``, or logits ``(B, C, bins, H, W)``."""
        return split_bins(self.net(z), self.out_channels, self.out_bins)
