"""DALL-E's dVAE encoder and decoder (Ramesh et al. 2021, appendix A.1; the released ``dall_e`` package).

Encoder: a 7x7 conv to ``n_hid`` channels, then ``G = num_downsamples + 1``
groups of ``n_blk_per_group`` bottleneck residual blocks with widths
``n_hid * 2^g`` (DALL-E: 256, 512, 1024, 2048), a 2x2 max-pool after every
group but the last, and a ReLU + 1x1 conv to the ``K`` logits.
``(B, C, H, W) -> (B, K, H / 2^n, W / 2^n)``.

Decoder: the mirror, with nearest-neighbour 2x upsampling between groups and
a ReLU + 1x1 conv to the likelihood's outputs (``C * out_bins``; DALL-E's
logit-Laplace: 2 per channel). Its input is the quantizer's ``z_q`` of ``D``
channels: DALL-E's first layer, a 1x1 conv from the one-hot codes to
``n_init = 128`` channels, is exactly the codebook lookup ``one_hot @ E``
with ``D = n_init``, so it is the codebook here.

Blocks: ``x -> id(x) + post_gain * res(x)`` with ``post_gain = 1 / L^2``
(``L`` = blocks in the net), which keeps the residual stack near the identity
at initialisation so a deep net trains without normalisation layers. The
encoder's residual path is ReLU-3x3, ReLU-3x3, ReLU-3x3, ReLU-1x1 through
``n_out / 4`` channels; the decoder's is ReLU-1x1, then three ReLU-3x3.
"""

from __future__ import annotations

import torch
from torch import nn

from vqvae.nets.blocks import split_bins


def _conv(n_in: int, n_out: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, k, padding=(k - 1) // 2)


class _Block(nn.Module):
    def __init__(self, n_in: int, n_out: int, n_layers: int, kernels: tuple[int, ...]):
        super().__init__()
        hid = max(1, n_out // 4)
        widths = [n_in, hid, hid, hid, n_out]
        self.id_path = _conv(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        layers = []
        for i, k in enumerate(kernels):
            layers += [nn.ReLU(), _conv(widths[i], widths[i + 1], k)]
        self.res_path = nn.Sequential(*layers)
        self.post_gain = 1.0 / n_layers**2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.id_path(x) + self.post_gain * self.res_path(x)


def _groups(n_hid: int, n_blk: int, groups: int, first_in: int, kernels: tuple[int, ...], between, reverse: bool) -> list[nn.Module]:
    widths = [n_hid * 2**g for g in range(groups)]
    if reverse:
        widths = widths[::-1]
    n_layers = groups * n_blk
    out, cin = [], first_in
    for g, w in enumerate(widths):
        for _ in range(n_blk):
            out.append(_Block(cin, w, n_layers, kernels))
            cin = w
        if g < groups - 1:
            out.append(between())
    return out


class DalleEncoder(nn.Module):
    def __init__(self, in_channels: int, n_hid: int, n_blk_per_group: int, num_downsamples: int, vocab_size: int):
        super().__init__()
        g = num_downsamples + 1
        self.net = nn.Sequential(_conv(in_channels, n_hid, 7),
                                 *_groups(n_hid, n_blk_per_group, g, n_hid, (3, 3, 3, 1), lambda: nn.MaxPool2d(2), reverse=False),
                                 nn.ReLU(), _conv(n_hid * 2 ** (g - 1), vocab_size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DalleDecoder(nn.Module):
    def __init__(self, out_channels: int, n_hid: int, n_blk_per_group: int, num_downsamples: int, embedding_dim: int, out_bins: int = 1):
        super().__init__()
        self.out_channels, self.out_bins = out_channels, out_bins
        self.net = nn.Sequential(*_groups(n_hid, n_blk_per_group, num_downsamples + 1, embedding_dim, (1, 3, 3, 3),
                                          lambda: nn.Upsample(scale_factor=2, mode="nearest"), reverse=True),
                                 nn.ReLU(), _conv(n_hid, out_channels * out_bins, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)`` -> ``(B, C, H, W)``, or ``(B, C, bins, H, W)``."""
        return split_bins(self.net(z), self.out_channels, self.out_bins)
