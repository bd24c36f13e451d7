"""Image quality: MSE, PSNR, SSIM and MS-SSIM on uint8 images (speech has :mod:`vqvae.audio.metrics`).

SSIM follows Wang et al. (2004): 11x11 Gaussian window (sigma 1.5), K1 = 0.01,
K2 = 0.03, on [0, 1] intensities, averaged over channels and valid positions.
Windows larger than the image shrink to the image's smaller side (odd).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def mse_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image in [0, 1] scale, ``(B,)``."""
    d = (a.float() - b.float()) / 255.0
    return (d * d).flatten(1).mean(1)


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for a mean squared error in [0, 1] scale (peak 1)."""
    return float("inf") if mse <= 0 else 10.0 * math.log10(1.0 / mse)


def _gaussian_1d(size: int, sigma: float, device) -> torch.Tensor:
    g = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(g * g) / (2 * sigma * sigma))
    return g / g.sum()


def ssim_per_image(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """SSIM per image for uint8 ``(B, C, H, W)`` tensors, ``(B,)``."""
    return _ssim_terms(a.double() / 255.0, b.double() / 255.0, window, sigma)[0].flatten(1).mean(1).float()


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, window: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps of float64 [0, 1] images ``(B, C, H, W)``."""
    # float64: the variance terms are differences of near-equal numbers
    c = x.shape[1]
    size = min(window, x.shape[-1], x.shape[-2])
    size -= 1 - size % 2
    g = _gaussian_1d(size, sigma, x.device)
    # the 2-D Gaussian is separable: a row pass then a column pass ("valid" windows) over all five maps
    # at once, each a float64 matrix-vector product over the unfolded windows (float64 convolutions are slow on CPUs)
    maps = torch.cat([x, y, x * x, y * y, x * y], 1)
    maps = maps.unfold(-1, size, 1) @ g
    maps = (maps.transpose(-1, -2).contiguous().unfold(-1, size, 1) @ g).transpose(-1, -2)
    mu_x, mu_y, exx, eyy, exy = maps.split(c, dim=1)
    sxx = exx - mu_x * mu_x
    syy = eyy - mu_y * mu_y
    sxy = exy - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    return (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1) * cs, cs


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli & Bovik 2003


def ms_ssim_per_image(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Multi-scale SSIM (Wang et al. 2003) per image for uint8 ``(B, C, H, W)``, ``(B,)``.

    Five scales (2x average-pool between them), the published exponents; contrast-
    structure at scales 1-4 and full SSIM at the coarsest, each averaged over
    positions and channels, as in the reference implementation and pytorch-msssim.
    Images need a shorter side of at least ``window * 16`` pixels (176 by default)."""
    x, y = a.double() / 255.0, b.double() / 255.0
    if min(x.shape[-2:]) < window * 2 ** (len(MS_SSIM_WEIGHTS) - 1):
        raise ValueError(f"MS-SSIM needs images of at least {window * 16} pixels a side, got {tuple(x.shape[-2:])}")
    out = torch.ones(x.shape[:2], dtype=torch.float64, device=x.device)  # (B, C)
    for i, wgt in enumerate(MS_SSIM_WEIGHTS):
        ssim, cs = _ssim_terms(x, y, window, sigma)
        last = i == len(MS_SSIM_WEIGHTS) - 1
        out = out * (ssim if last else cs).flatten(2).mean(2).clamp_min(0) ** wgt
        if not last:  # odd sides are padded, as pytorch-msssim does
            pad = [s % 2 for s in x.shape[-2:]]
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
    return out.mean(1).float()
