"""Speech DSP against closed forms: mu-law companding and its error bound, the HTK mel filterbank, log-mel spectrograms."""

from __future__ import annotations

import math

import numpy as np
import torch

from vqvae.nets.dsp import hz_to_mel, log_mel, mel_filterbank, mel_to_hz, mu_law_decode, mu_law_encode


def _tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_mu_law_range_monotone_and_error_bound():
    mu = 255
    x = torch.linspace(-1, 1, 200001)
    q = mu_law_encode(x)
    assert q.dtype == torch.int64 and q.min() == 0 and q.max() == 255
    assert torch.all(q[1:] >= q[:-1])  # monotone
    assert len(torch.unique(q)) == 256  # every class used
    assert mu_law_encode(torch.zeros(())).item() in (127, 128)
    y = mu_law_decode(q)
    assert y.dtype == torch.float32 and y.abs().max() <= 1 + 1e-6
    bound = (x.abs() + 1 / mu) * ((1 + mu) ** (1 / mu) - 1)  # companded value within 1/mu of the truth
    assert torch.all((y - x).abs() <= bound + 1e-6)
    compand = lambda v: torch.sign(v) * torch.log1p(mu * v.abs()) / math.log1p(mu)  # noqa: E731
    assert (compand(y) - compand(x)).abs().max() <= 1 / mu + 1e-5
    q2 = mu_law_encode(torch.rand(2, 3, 50) * 2 - 1)  # any shape
    assert q2.shape == (2, 3, 50) and mu_law_decode(q2).shape == (2, 3, 50)
    torch.testing.assert_close(mu_law_encode(mu_law_decode(torch.arange(256))), torch.arange(256))  # classes are fixed points
    assert mu_law_encode(torch.tensor([-5.0, 5.0])).tolist() == [0, 255]


# -- log-mel ----------------------------------------------------------------
def test_mel_filterbank_shape_and_rows():
    fb = mel_filterbank(8000, 256, 40)
    assert fb.shape == (40, 129) and fb.min() >= 0 and fb.max() <= 1
    assert torch.all(fb.sum(1) > 0)  # no empty band, even the narrow low ones
    centres = fb.argmax(1)
    assert torch.all(centres[1:] >= centres[:-1])  # bands climb in frequency
    np.testing.assert_allclose(mel_to_hz(hz_to_mel([0.0, 700.0, 4000.0])), [0.0, 700.0, 4000.0], atol=1e-6)
    assert abs(hz_to_mel(1000.0) - 1000.0) < 0.1  # HTK scale: 1000 Hz is ~1000 mel
    fb[:] = 0
    assert mel_filterbank(8000, 256, 40).sum() > 0  # the cached bank is not exposed


def test_log_mel_shape_finite_and_tone_band():
    rate, f0 = 8000, 1000.0
    x = torch.from_numpy(_tone(f0, rate, 0.5))
    batch = torch.stack([x, torch.zeros_like(x)])[:, None]  # (2, 1, T)
    m = log_mel(batch, rate)
    assert m.shape == (2, 1, 40, 1 + x.numel() // 64) and torch.isfinite(m).all()
    assert torch.all(m[1] == math.log(1e-5))  # silence sits at the floor
    fb = mel_filterbank(rate, 256, 40)
    band = int(fb[:, round(f0 / (rate / 256))].argmax())  # the band whose peak is nearest the tone's bin
    energy = m[0, 0].exp().mean(-1)
    assert abs(int(energy.argmax()) - band) <= 1
    assert energy[max(0, band - 1) : band + 2].sum() > 0.9 * energy.sum()  # concentrated there
    assert log_mel(torch.zeros(10), rate).shape == (40, 1)  # a very short clip still works
