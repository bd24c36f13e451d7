"""The waveform output of the parallel audio decoder and its multi-resolution STFT loss (issue 6)."""

import numpy as np
import pytest
import torch

from vqvae.core.errors import ConfigError
from vqvae.audio.losses import multi_resolution_stft_loss
from vqvae.audio.model import AudioVQVAE, AudioVQVAEConfig


def tiny(**kw) -> AudioVQVAEConfig:
    base = dict(num_speakers=3, speaker_dim=4, hidden=8, res_hidden=4, num_res_blocks=1, num_downsamples=3, codebook_size=16, embedding_dim=4,
                output="waveform")
    return AudioVQVAEConfig(**{**base, **kw})


def _np_stft_mag(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """An independent STFT: centred (reflect padding) Hann frames, |rfft|; the layout of torch.stft(center=True)."""
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    xp = np.pad(x, (n_fft // 2, n_fft // 2), mode="reflect")
    frames = np.stack([xp[s : s + n_fft] * w for s in range(0, len(xp) - n_fft + 1, hop)], 1)
    return np.abs(np.fft.rfft(frames, axis=0))


def test_stft_loss_matches_a_numpy_oracle():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 1024, generator=g) * 0.3, torch.randn(2, 1024, generator=g) * 0.3
    res = ((256, 64, 256), (128, 32, 128))
    want = 0.0
    for n_fft, hop, _ in res:
        mx = np.stack([_np_stft_mag(v, n_fft, hop) for v in x.double().numpy()]).clip(1e-3)
        my = np.stack([_np_stft_mag(v, n_fft, hop) for v in y.double().numpy()]).clip(1e-3)
        want += np.linalg.norm(mx - my) / np.linalg.norm(mx) + np.abs(np.log(my) - np.log(mx)).mean()
    assert multi_resolution_stft_loss(y, x, res).item() == pytest.approx(want / 2, rel=1e-4)


def test_stft_loss_prefers_the_right_sound_at_the_wrong_phase_to_silence():
    t = torch.arange(2048) / 8000
    x = torch.sin(2 * torch.pi * 440 * t)[None] * 0.5
    assert multi_resolution_stft_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    shifted = torch.sin(2 * torch.pi * 440 * t + 2.0)[None] * 0.5  # another phase: the same tone
    silence = torch.zeros_like(x)
    # a waveform loss (MSE) prefers silence to the phase-shifted tone, which is why decoders trained on it fall silent;
    # the spectral loss prefers the tone
    assert (shifted - x).pow(2).mean() > (silence - x).pow(2).mean()
    assert multi_resolution_stft_loss(shifted, x).item() < 0.5 * multi_resolution_stft_loss(silence, x).item()


def test_waveform_output_shapes_range_and_loss():
    m = AudioVQVAE(tiny())
    x = torch.rand(2, 1, 512) * 1.6 - 0.8
    spk = torch.tensor([0, 2])
    out = m(x, spk)
    assert out.logits.shape == (2, 1, 512) and out.logits.abs().max() <= 1
    assert out.recon_loss.item() == pytest.approx(multi_resolution_stft_loss(out.logits[:, 0], x[:, 0]).item(), rel=1e-5)
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (m.decoder.out.weight, next(m.encoder.parameters())))
    m.eval()
    y = m.reconstruct(x, spk)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert torch.allclose(y, m.decode(m.encode(x), spk))  # deterministic
    assert not torch.allclose(m.convert(x, torch.tensor([1, 1])), y)  # the speaker changes the output


def test_waveform_output_learns_a_clip():
    torch.manual_seed(0)
    m = AudioVQVAE(tiny(kmeans_init=False))
    t = torch.arange(1024) / 8000
    x = (0.5 * torch.sin(2 * torch.pi * 300 * t) * torch.hann_window(1024))[None, None]
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    first = None
    for _ in range(150):
        out = m(x, torch.tensor([0]))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first if first is not None else out.recon_loss.item()
    assert out.recon_loss.item() < 0.5 * first


def test_waveform_output_needs_the_parallel_decoder():
    with pytest.raises(ConfigError, match="output=waveform"):
        AudioVQVAE(tiny(decoder="wavenet"))


def test_stft_loss_on_clips_shorter_than_its_windows():
    x = torch.randn(2, 256) * 0.3
    assert multi_resolution_stft_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)  # only the 128 window fits
    assert multi_resolution_stft_loss(torch.zeros(1, 20), torch.randn(1, 20)).item() > 0  # none fits: one that does


def _quiet_speech(b: int = 4, t: int = 4096, seed: int = 0) -> torch.Tensor:
    """Noise under a slow random envelope at FSDD's level (std about 0.04)."""
    g = torch.Generator().manual_seed(seed)
    env = torch.nn.functional.interpolate(torch.rand(b, 1, t // 256, generator=g), size=t, mode="linear")
    return 0.1 * env * torch.randn(b, 1, t, generator=g)


def test_encoder_at_init_sees_quiet_speech_so_the_codebook_cannot_collapse():
    # Regression: with PyTorch's default init the six strided convs shrank a
    # std-0.04 input to 1 % of the biases, every position got the same z_e and
    # the trained FSDD codebook had perplexity 1.
    torch.manual_seed(0)
    m = AudioVQVAE(AudioVQVAEConfig(num_speakers=2, hidden=32, res_hidden=16))
    z = m._encode(_quiet_speech())
    spread = z.std(dim=(0, 2)).mean() / z.mean(dim=(0, 2)).abs().mean()
    assert spread > 0.3, f"z_e barely varies across positions (spread {spread:.4f})"


def test_encoder_input_is_mu_law_companded_or_linear():
    from vqvae.nets.dsp import mu_law_compress

    torch.manual_seed(0)
    x = _quiet_speech(2, 512)
    mu = AudioVQVAE(AudioVQVAEConfig(num_speakers=1, hidden=8, res_hidden=4, num_downsamples=3, codebook_size=8, embedding_dim=4))
    lin = AudioVQVAE(AudioVQVAEConfig(num_speakers=1, hidden=8, res_hidden=4, num_downsamples=3, codebook_size=8, embedding_dim=4, encoder_input="linear"))
    lin.load_state_dict(mu.state_dict())
    assert torch.allclose(mu._encode(x), lin.encoder(mu_law_compress(x)))
    assert torch.allclose(lin._encode(x), mu.encoder(x))
    assert torch.equal(mu.encode(x), mu.quantizer.quantize(mu.encoder(mu_law_compress(x))))
