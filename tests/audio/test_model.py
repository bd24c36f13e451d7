"""The speech VQ-VAE (paper, section 4.3): shapes, the paper's encoder, WaveNet
causality and fast generation, speaker conditioning, the mu-law loss, overfitting, errors."""

import inspect
import math

import numpy as np
import pytest
import torch
from torch import nn

from vqvae.core.errors import ConfigError
from vqvae.nets.dsp import mu_law_decode as _mu_law_decode
from vqvae.nets.dsp import mu_law_encode as _mu_law_encode
from vqvae.audio.model import AudioVQVAE, AudioVQVAEConfig
from vqvae.nets.audio import ParallelDecoder, WaveNetDecoder


def tiny(**kw) -> AudioVQVAEConfig:
    base = dict(num_speakers=3, speaker_dim=4, hidden=8, res_hidden=4, num_res_blocks=1, num_downsamples=6,
                codebook_size=16, embedding_dim=4, wavenet_channels=8, wavenet_layers=4, wavenet_cycle=2)
    base.update(kw)
    return AudioVQVAEConfig(**base)


def noise(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, t, generator=g) * 1.6 - 0.8


def snr_db(x: torch.Tensor, y: torch.Tensor) -> float:
    return 10 * math.log10(x.pow(2).mean().item() / (y - x).pow(2).mean().clamp_min(1e-12).item())


# -- shapes and the paper's layout ---------------------------------------------

def test_paper_encoder_layout_and_rate():
    cfg = AudioVQVAEConfig(num_speakers=2)
    assert cfg.downsampling == 64 and cfg.bits_per_second == pytest.approx(8000 / 64 * 9)
    m = AudioVQVAE(cfg)
    strided = [c for c in m.encoder.modules() if isinstance(c, nn.Conv1d) and c.stride == (2,)]
    assert len(strided) == 6 and all(c.kernel_size == (4,) and c.padding == (1,) for c in strided)
    x = noise(2, 1024)
    assert m.encoder(x).shape == (2, 64, 16)
    codes = m.encode(x)
    assert codes.shape == (2, 16) and codes.dtype == torch.int64
    ups = [c for c in m.decoder.modules() if isinstance(c, nn.ConvTranspose1d)]
    assert len(ups) == 6 and all(c.kernel_size == (4,) and c.stride == (2,) for c in ups)


@pytest.mark.parametrize("decoder", ["parallel", "wavenet"])
def test_forward_shapes_and_gradients(decoder):
    m = AudioVQVAE(tiny(decoder=decoder))
    x, spk = noise(2, 1024), torch.tensor([0, 2])
    out = m(x, spk)
    assert out.logits.shape == (2, 256, 1024)
    assert out.vq.indices.shape == (2, 16)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize("decoder", ["parallel", "wavenet"])
def test_decode_shapes_and_range(decoder):
    m = AudioVQVAE(tiny(decoder=decoder, num_downsamples=2)).eval()
    x, spk = noise(2, 64), torch.tensor([1, 0])
    codes = m.encode(x)
    assert codes.shape == (2, 16)
    y = m.decode(codes, spk, generator=torch.Generator().manual_seed(0))
    assert y.shape == (2, 1, 64) and y.dtype == torch.float32
    assert y.abs().max() <= 1.0


def test_parallel_decode_is_expectation_and_temperature_zero_is_argmax():
    m = AudioVQVAE(tiny(num_downsamples=2)).eval()
    codes, spk = m.encode(noise(1, 32)), torch.tensor([0])
    logits = m.decoder(m.quantizer.lookup(codes), m.speaker(spk))
    levels = torch.arange(256.0) * 2 / 255 - 1
    f = (logits.softmax(1) * levels[:, None]).sum(1)
    expect = torch.sign(f) * ((1 + 255) ** f.abs() - 1) / 255
    assert torch.allclose(m.decode(codes, spk)[:, 0], expect, atol=1e-5)
    assert torch.allclose(m.decode(codes, spk, temperature=0)[:, 0], _mu_law_decode(logits.argmax(1)))


# -- mu-law and the loss ----------------------------------------------------------

def test_mu_law_round_trip():
    q = torch.arange(256)
    assert torch.equal(_mu_law_encode(_mu_law_decode(q)), q)
    assert _mu_law_encode(torch.tensor([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]
    x = torch.linspace(-1, 1, 10001)
    err = (_mu_law_decode(_mu_law_encode(x)) - x).abs()
    # half a step of 2/255 in the companded domain, times the expansion's slope
    assert err.max() <= (1 / 255) * math.log(256) * 256 / 255 + 1e-6
    assert err[4950:5051].max() < 1e-3  # fine steps near silence: mu-law's point


@pytest.mark.parametrize("decoder", ["parallel", "wavenet"])
def test_loss_is_mu_law_cross_entropy_plus_quantizer_loss(decoder):
    m = AudioVQVAE(tiny(decoder=decoder, num_downsamples=3))
    x = noise(2, 64, seed=3)
    out = m(x, torch.tensor([2, 1]))
    xn = x[:, 0].double().numpy()
    comp = np.sign(xn) * np.log1p(255 * np.abs(xn)) / np.log(256)
    target = np.clip(np.floor((comp + 1) / 2 * 255 + 0.5), 0, 255).astype(np.int64)
    logp = out.logits.detach().double().log_softmax(1).numpy()
    b, t = np.meshgrid(np.arange(2), np.arange(64), indexing="ij")
    manual = -logp[b, target, t].mean()
    assert out.recon_loss.item() == pytest.approx(manual, abs=1e-5)
    assert torch.allclose(out.loss, out.recon_loss + out.vq.loss)


# -- WaveNet: causality, receptive field, fast generation ------------------------

def test_wavenet_causality_oracle_and_receptive_field():
    torch.manual_seed(0)
    net = WaveNetDecoder(embedding_dim=3, channels=6, layers=5, cycle=3, speaker_dim=2, upsample=4).double()
    assert net.dilations == [1, 2, 4, 1, 2]
    layers, cycle = 5, 3
    assert net.receptive_field == 1 + (layers // cycle) * (2**cycle - 1) + 2 ** (layers % cycle) - 1 == 11
    samples = torch.randint(0, 256, (2, 64), generator=torch.Generator().manual_seed(1))
    z, g = torch.randn(2, 3, 16, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)
    with torch.no_grad():
        base = net(samples, z, g)
        for t in (0, 20, 50):
            pert = samples.clone()
            pert[:, t] = (pert[:, t] + 97) % 256
            diff = (net(pert, z, g) - base).abs().amax(dim=(0, 1))
            # exact: positions outside the receptive field see bit-identical inputs; the
            # farthest one inside changes only by ~1e-7 (a product of 5 layers' weights)
            changed = set(torch.nonzero(diff > 0).flatten().tolist())
            assert changed == set(range(t + 1, min(t + net.receptive_field, 63) + 1)), (t, sorted(changed))


def test_wavenet_incremental_equals_teacher_forced():
    torch.manual_seed(0)
    net = WaveNetDecoder(embedding_dim=3, channels=6, layers=6, cycle=3, speaker_dim=2, upsample=8).eval()
    samples = torch.randint(0, 256, (3, 80), generator=torch.Generator().manual_seed(2))
    z, g = torch.randn(3, 3, 10), torch.randn(3, 2)
    with torch.no_grad():
        full = net(samples, z, g)
    state, prev, steps = net.start(z, g), None, []
    for t in range(80):
        steps.append(net.step(state, prev))
        prev = samples[:, t]
    assert torch.allclose(torch.stack(steps, -1), full, atol=1e-5)
    with pytest.raises(ValueError, match="covers 80 samples"):
        net.step(state, prev)


def test_wavenet_generation_reproducible():
    m = AudioVQVAE(tiny(decoder="wavenet", num_downsamples=2)).eval()
    codes, spk = m.encode(noise(2, 48)), torch.tensor([0, 1])
    a = m.decode(codes, spk, generator=torch.Generator().manual_seed(5))
    b = m.decode(codes, spk, generator=torch.Generator().manual_seed(5))
    c = m.decode(codes, spk, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(m.decode(codes, spk, temperature=0), m.decode(codes, spk, temperature=0))
    # the sampled classes are exactly mu-law levels
    assert torch.equal(_mu_law_decode(_mu_law_encode(a)), a)


# -- speaker conditioning and voice conversion ---------------------------------

@pytest.mark.parametrize("decoder", ["parallel", "wavenet"])
def test_speaker_conditioning_and_conversion(decoder):
    m = AudioVQVAE(tiny(decoder=decoder, num_downsamples=2)).eval()
    x = noise(1, 32, seed=4).expand(2, 1, 32)
    with torch.no_grad():
        out = m(x, torch.tensor([0, 1]))
    assert not torch.allclose(out.logits[0], out.logits[1], atol=1e-4)
    assert list(inspect.signature(m.encode).parameters) == ["x"]
    codes = m.encode(x)
    assert torch.equal(codes[0], codes[1])
    tgt = torch.tensor([2, 2])
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(m.convert(x, tgt, generator=gen()), m.decode(codes, tgt, generator=gen()))
    assert torch.equal(m.reconstruct(x, torch.tensor([0, 1]), generator=gen()), m.decode(codes, torch.tensor([0, 1]), generator=gen()))


def test_parallel_decoder_without_speaker():
    dec = ParallelDecoder(embedding_dim=3, hidden=4, res_hidden=2, num_res_blocks=1, num_downsamples=2, speaker_dim=0)
    assert dec(torch.randn(1, 3, 5)).shape == (1, 256, 20)
    with pytest.raises(ValueError, match="speaker_dim=0"):
        dec(torch.randn(1, 3, 5), torch.randn(1, 4))


# -- learning --------------------------------------------------------------------

def test_overfits_a_two_tone_clip():
    torch.manual_seed(0)
    cfg = tiny(num_speakers=1, hidden=32, res_hidden=16, num_downsamples=3, embedding_dim=8, restart_after=0)
    m = AudioVQVAE(cfg)
    t = torch.arange(512) / cfg.sample_rate
    x = (0.5 * torch.sin(2 * math.pi * 200 * t) + 0.25 * torch.sin(2 * math.pi * 300 * t)).view(1, 1, -1)
    spk = torch.zeros(1, dtype=torch.long)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(300):
        loss = m(x, spk).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    assert snr_db(x, m.reconstruct(x, spk)) > 20


# -- errors ------------------------------------------------------------------------

def test_bad_inputs():
    m = AudioVQVAE(tiny(num_downsamples=2))
    x, spk = noise(2, 32), torch.tensor([0, 1])
    for bad in (x[:, 0], torch.cat([x, x], 1), (x * 100).long()):
        with pytest.raises(ValueError, match=r"\(B, 1, T\)"):
            m(bad, spk)
    with pytest.raises(ValueError, match="multiple of the downsampling 4"):
        m(noise(2, 30), spk)
    with pytest.raises(ValueError, match="multiple of the downsampling 4"):
        m.encode(noise(2, 30))
    for bad in (torch.tensor([0, 3]), torch.tensor([-1, 0])):
        with pytest.raises(ValueError, match=r"speaker ids must lie in \[0, 3\)"):
            m(x, bad)
    for bad in (torch.tensor([0]), torch.tensor([0.0, 1.0]), torch.tensor([[0, 1]])):
        with pytest.raises(ValueError, match="expected speaker ids"):
            m(x, bad)
    codes = m.encode(x)
    with pytest.raises(ValueError, match=r"expected codes \(B, t\)"):
        m.decode(codes[0], spk)
    with pytest.raises(ValueError, match="indices must lie"):
        m.decode(codes + 16, spk)
    with pytest.raises(ValueError, match="temperature"):
        m.decode(codes, spk, temperature=-1)
    with pytest.raises(ValueError, match="speaker ids must lie"):
        m.convert(x, torch.tensor([5, 0]))
    wn = WaveNetDecoder(embedding_dim=3, channels=4, layers=2, cycle=2, speaker_dim=2, upsample=4)
    with pytest.raises(ValueError, match=r"T/4"):
        wn(torch.zeros(1, 30, dtype=torch.long), torch.randn(1, 3, 8), torch.randn(1, 2))
    with pytest.raises(ValueError, match="speaker vectors"):
        wn(torch.zeros(1, 32, dtype=torch.long), torch.randn(1, 3, 8), None)


@pytest.mark.parametrize("key,value", [
    ("num_speakers", -1), ("speaker_dim", 0), ("hidden", 0), ("num_res_blocks", -1), ("num_downsamples", 0),
    ("codebook_size", 1), ("embedding_dim", 0), ("commitment_cost", -0.1), ("quantizer", "kmeans"),
    ("decay", 1.0), ("restart_after", -1), ("decoder", "lstm"), ("wavenet_layers", 0), ("wavenet_cycle", 0),
    ("wavenet_channels", 0), ("sample_rate", 0), ("output", "wav"), ("encoder_input", "mfcc"),
])
def test_bad_config(key, value):
    cfg = tiny(**{key: value})
    with pytest.raises(ConfigError, match=f"model.{key}"):
        cfg.validate()
    with pytest.raises(ConfigError, match=f"model.{key}"):
        AudioVQVAE(cfg)


def test_num_speakers_must_be_filled_in():
    cfg = AudioVQVAEConfig()
    cfg.validate()  # 0 is valid in a config: training fills it in from the data
    with pytest.raises(ConfigError, match="model.num_speakers is 0"):
        AudioVQVAE(cfg)
