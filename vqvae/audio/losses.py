"""The audio VQ-VAE's spectral loss (its waveform decoder's training objective)."""

from __future__ import annotations

import math

import torch

STFT_RESOLUTIONS = ((512, 128, 512), (256, 64, 256), (128, 32, 128))  # (n_fft, hop, window): 64 ms, 32 ms, 16 ms at 8 kHz


def multi_resolution_stft_loss(y: torch.Tensor, x: torch.Tensor, resolutions=STFT_RESOLUTIONS, floor: float = 1e-3) -> torch.Tensor:
    """The multi-resolution STFT loss of Parallel WaveGAN (Yamamoto et al. 2020, eqs. 4-7) between waveforms ``(B, T)``.

    Per resolution: spectral convergence ``||X - Y||_F / ||X||_F`` (here over the whole batch, so silent
    crops do not divide by zero) plus the mean L1 distance of the log magnitudes (clamped at ``floor``);
    averaged over the resolutions whose window fits the clip. Phase-blind: a decoder that cannot know the waveform's phase from codes
    at 1/64 of the sample rate still learns the spectrum, where a per-sample likelihood averages to silence.
    """
    t = x.shape[-1]
    usable = [r for r in resolutions if r[0] <= t]
    if not usable:  # clips shorter than every window: one resolution that fits
        n = max(8, 2 ** int(math.log2(max(t, 8))))
        usable = [(min(n, t), max(1, min(n, t) // 4), min(n, t))]
    total = y.new_zeros((), dtype=torch.float32)
    for n_fft, hop, win in usable:
        w = torch.hann_window(win, device=x.device)
        mag_y = torch.stft(y.float(), n_fft, hop, win, w, return_complex=True).abs().clamp_min(floor)
        mag_x = torch.stft(x.float(), n_fft, hop, win, w, return_complex=True).abs().clamp_min(floor)
        sc = torch.linalg.vector_norm(mag_x - mag_y) / torch.linalg.vector_norm(mag_x).clamp_min(floor)
        total = total + sc + (mag_y.log() - mag_x.log()).abs().mean()
    return total / len(usable)
