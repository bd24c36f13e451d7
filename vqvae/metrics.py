"""Quality metrics: PSNR and SSIM on uint8 images; SNR and log-mel distance on waveforms.

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


def _gaussian_window(size: int, sigma: float, channels: int, device) -> torch.Tensor:
    g = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(g * g) / (2 * sigma * sigma))
    g = g / g.sum()
    w = torch.outer(g, g)
    return w.expand(channels, 1, size, size).contiguous()


def ssim_per_image(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """SSIM per image for uint8 ``(B, C, H, W)`` tensors, ``(B,)``."""
    # float64: the variance terms are differences of near-equal numbers
    x = a.double() / 255.0
    y = b.double() / 255.0
    c = x.shape[1]
    size = min(window, x.shape[-1], x.shape[-2])
    size -= 1 - size % 2
    w = _gaussian_window(size, sigma, c, x.device).double()
    conv = lambda t: F.conv2d(t, w, groups=c)  # noqa: E731
    mu_x, mu_y = conv(x), conv(y)
    sxx = conv(x * x) - mu_x * mu_x
    syy = conv(y * y) - mu_y * mu_y
    sxy = conv(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1).float()


# -- audio --------------------------------------------------------------------
def snr_db(ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio per clip in dB, ``10 log10(sum ref^2 / sum (est - ref)^2)``, ``(B,)``."""
    ref, est = ref.float().flatten(1), est.float().flatten(1)
    return 10 * torch.log10(ref.pow(2).sum(1).clamp_min(1e-12) / (est - ref).pow(2).sum(1).clamp_min(1e-12))


def log_mel_distance(ref: torch.Tensor, est: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Mean absolute difference of the natural-log mel energies (40 bands, 32 ms windows, 8 ms hop
    at 8 kHz) per clip, ``(B,)``: 0 for identical spectra; insensitive to phase, unlike SNR."""
    from vqvae.audio_data import log_mel

    a, b = log_mel(ref.float().flatten(1), sample_rate), log_mel(est.float().flatten(1), sample_rate)
    return (a - b).abs().flatten(1).mean(1)
