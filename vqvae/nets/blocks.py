"""Residual blocks shared by the image and audio nets.

The VQ-VAE paper (section 4.1): "two residual 3x3 blocks (implemented as ReLU,
3x3 conv, ReLU, 1x1 conv)". The stack ends with a ReLU, as in Sonnet's
reference implementation, because a strided (transposed) conv follows.
"""

from __future__ import annotations

import torch
from torch import nn


def strided_stack(conv, channels: list[int]) -> list[nn.Module]:
    """Window-4 stride-2 (transposed) convolutions through ``channels``, ReLU between them:
    the paper's down- and up-sampling for images (2-D) and audio (1-D). Each halves
    (doubles) the length exactly: padding 1 on window 4."""
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(conv(cin, cout, 4, stride=2, padding=1))
    return layers


def kaiming_relu_(module: nn.Module) -> nn.Module:
    """He et al. (2015) init for every (transposed) conv in ``module``: weights
    N(0, 2/fan_in), biases zero. Returns ``module``.

    Why: PyTorch's default conv init keeps only about 1/3 of the variance per
    layer, so after the audio encoder's six strided convs a speech input (std
    about 0.05) is 1 % of the biases: every position gets the same vector,
    k-means finds one centre and the codebook collapses (perplexity 1). With
    He init and zero biases the stack is scale-preserving and the codes see the
    signal.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu", mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class ResidualBlock(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))`` for 1-D (audio) or 2-D (image) inputs."""

    def __init__(self, channels: int, hidden: int, dims: int = 2):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.net = nn.Sequential(
            nn.ReLU(),
            conv(channels, hidden, 3, padding=1),
            nn.ReLU(),
            conv(hidden, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class ResidualStack(nn.Sequential):
    """``n`` residual blocks followed by a ReLU."""

    def __init__(self, channels: int, hidden: int, n: int, dims: int = 2):
        super().__init__(*[ResidualBlock(channels, hidden, dims) for _ in range(n)], nn.ReLU())


def split_bins(y: torch.Tensor, out_channels: int, out_bins: int) -> torch.Tensor:
    """A decoder's last layer ``(B, C * bins, H, W)`` -> ``(B, C, bins, H, W)`` when ``bins > 1`` (per-sub-pixel logits
    or likelihood parameters), unchanged otherwise."""
    if out_bins > 1:
        b, _, h, w = y.shape
        y = y.view(b, out_channels, out_bins, h, w)
    return y
