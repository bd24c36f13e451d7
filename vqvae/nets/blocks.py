"""Residual blocks shared by the image and audio nets.

The VQ-VAE paper (section 4.1): "two residual 3x3 blocks (implemented as ReLU,
3x3 conv, ReLU, 1x1 conv)". The stack ends with a ReLU, as in Sonnet's
reference implementation, because a strided (transposed) conv follows.
"""

from __future__ import annotations

import torch
from torch import nn


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
