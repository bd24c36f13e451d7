"""How close decoded speech is to the original: SNR (phase-sensitive) and log-mel distance (phase-blind)."""

from __future__ import annotations

import torch

from vqvae.nets.dsp import log_mel


def snr_db(ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio per clip in dB, ``10 log10(sum ref^2 / sum (est - ref)^2)``, ``(B,)``."""
    ref, est = ref.float().flatten(1), est.float().flatten(1)
    return 10 * torch.log10(ref.pow(2).sum(1).clamp_min(1e-12) / (est - ref).pow(2).sum(1).clamp_min(1e-12))


def log_mel_distance(ref: torch.Tensor, est: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Mean absolute difference of the natural-log mel energies (40 bands, 32 ms windows, 8 ms hop
    at 8 kHz) per clip, ``(B,)``: 0 for identical spectra; insensitive to phase, unlike SNR."""
    a, b = log_mel(ref.float().flatten(1), sample_rate), log_mel(est.float().flatten(1), sample_rate)
    return (a - b).abs().flatten(1).mean(1)
