"""Signal processing for speech, shared by the audio models, metrics and pictures.

* mu-law companding and WaveNet's 256-way quantisation (van den Oord et al.
  2016): the audio VQ-VAE's categorical output and its encoder's input scale;
* a mel filterbank (HTK scale) and :func:`log_mel`, a log-mel power
  spectrogram: the audio classifiers' input, the log-mel distance, plots.

Pure tensor maths: no files, no models.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch


def mu_law_compress(x: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Waveform in [-1, 1] (any shape) -> companded ``F(x) = sign(x) ln(1 + mu|x|) / ln(1 + mu)`` in [-1, 1].

    mu-law spends its levels logarithmically, as speech amplitudes are.
    """
    x = x.float().clamp(-1.0, 1.0)
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def mu_law_expand(f: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Inverse of :func:`mu_law_compress`: ``sign(f) ((1 + mu)^|f| - 1) / mu``."""
    f = f.float().clamp(-1.0, 1.0)
    return torch.sign(f) * torch.expm1(f.abs() * math.log1p(mu)) / mu


def mu_law_levels(mu: int = 255) -> torch.Tensor:
    """Companded value of each class, ``2 k / mu - 1`` for ``k = 0..mu``."""
    return torch.arange(mu + 1, dtype=torch.float32) * (2.0 / mu) - 1.0


def mu_law_encode(x: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Quantise audio in [-1, 1] (any shape) to int64 classes ``0..mu``: the companded
    value rounded to ``mu + 1`` levels -- WaveNet's 256-way softmax output, which the
    VQ-VAE audio decoder predicts. Silence (0) maps to ``(mu + 1) // 2``.
    """
    return torch.floor((mu_law_compress(x, mu) + 1) / 2 * mu + 0.5).clamp(0, mu).long()


def mu_law_decode(q: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Inverse of :func:`mu_law_encode`: int classes (any shape) to float32 audio in [-1, 1].

    The companded value is off by at most ``1/mu`` so the error is at most
    ``(|x| + 1/mu) ((1 + mu)^(1/mu) - 1)``, about 2.2 % of ``|x|`` for ``mu = 255``.
    """
    return mu_law_expand(2 * q.float() / mu - 1, mu)


# -- spectrograms -----------------------------------------------------------
def hz_to_mel(f):
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)`` on the HTK scale, peak 1 (unnormalised).

    Band ``m`` rises from edge ``m`` to a peak at centre ``m + 1`` and falls to edge
    ``m + 2`` of ``n_mels + 2`` points equally spaced in mel between ``fmin`` and
    ``fmax`` (default Nyquist). Weights are evaluated at each FFT bin's exact
    frequency, so narrow low bands still catch a bin. Returns a fresh copy.
    """
    return _filterbank(int(sample_rate), int(n_fft), int(n_mels), float(fmin), float(fmax or sample_rate / 2)).clone()


@functools.lru_cache(maxsize=16)
def _filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs - lo) / (mid - lo)
    down = (hi - freqs) / (hi - mid)
    return torch.from_numpy(np.maximum(0.0, np.minimum(up, down))).float()


def log_mel(x: torch.Tensor, sample_rate: int, n_fft: int = 256, hop: int = 64, n_mels: int = 40, floor: float = 1e-5) -> torch.Tensor:
    """Log mel power spectrogram of ``x`` ``(..., T)`` -> ``(..., n_mels, 1 + T // hop)``.

    ``|STFT|^2`` with a Hann window of ``n_fft`` (centred frames, edges zero-padded
    so any ``T >= 1`` works), projected on :func:`mel_filterbank`, then the natural
    log of ``max(mel, floor)``: the floor keeps silence finite (about -11.5, i.e.
    ~100 dB below a full-scale tone). Defaults suit 8 kHz speech: 32 ms windows,
    8 ms hop, 40 bands. Differentiable; runs on ``x``'s device and dtype.
    """
    shape = x.shape
    flat = x.reshape(-1, shape[-1])
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(flat, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)
    power = spec.real**2 + spec.imag**2  # (B, n_fft // 2 + 1, frames)
    fb = _filterbank(int(sample_rate), n_fft, n_mels, 0.0, sample_rate / 2).to(x.device, x.dtype)
    mel = torch.matmul(fb, power)
    return torch.log(mel.clamp_min(floor)).reshape(*shape[:-1], n_mels, mel.shape[-1])
