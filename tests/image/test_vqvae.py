"""The image VQ-VAE: shapes, paper architecture, likelihoods and the bits/dim bound."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from vqvae.image import likelihoods as losses
from vqvae.image import metrics
from vqvae.image.inference import evaluate, reconstruct
from vqvae.image.vqvae import VQVAE, VQVAEConfig
from vqvae.registry import create_model


def tiny(**kw):
    base = dict(in_channels=1, hidden=8, res_hidden=4, num_res_blocks=1, codebook_size=16, embedding_dim=4)
    base.update(kw)
    return VQVAEConfig(**base)


def test_paper_architecture():
    m = VQVAE(VQVAEConfig(in_channels=3))
    convs = [l for l in m.encoder.modules() if isinstance(l, nn.Conv2d)]
    strided = [c for c in convs if c.stride == (2, 2)]
    assert len(strided) == 2 and all(c.kernel_size == (4, 4) and c.out_channels == 256 for c in strided)
    res = [c for c in convs if c.stride == (1, 1)]
    assert [c.kernel_size for c in res[:4]] == [(3, 3), (1, 1), (3, 3), (1, 1)]
    tconvs = [l for l in m.decoder.modules() if isinstance(l, nn.ConvTranspose2d)]
    assert len(tconvs) == 2 and all(t.kernel_size == (4, 4) and t.stride == (2, 2) for t in tconvs)
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert m.encode(x).shape == (2, 8, 8)


@pytest.mark.parametrize("lik", ["mse", "categorical"])
@pytest.mark.parametrize("ch,down", [(1, 2), (3, 1), (3, 3)])
def test_shapes_and_roundtrip(lik, ch, down):
    m = VQVAE(tiny(in_channels=ch, likelihood=lik, num_downsamples=down))
    x = torch.randint(0, 256, (2, ch, 16, 24), dtype=torch.uint8)
    out = m(x)
    f = 2**down
    if lik == "mse":
        assert out.out.shape == x.shape
    else:
        assert out.out.shape == (2, ch, 256, 16, 24)
    codes = m.encode(x)
    assert codes.shape == (2, 16 // f, 24 // f)
    y = m.decode(codes)
    assert y.shape == x.shape and y.dtype == torch.uint8
    out.loss.backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if n.startswith("encoder"))


def test_categorical_nll_matches_manual_softmax():
    logits = torch.randn(2, 1, 256, 3, 3)
    x = torch.randint(0, 256, (2, 1, 3, 3), dtype=torch.uint8)
    logp = logits.log_softmax(2)
    manual = -logp.gather(2, x.long()[:, :, None]).squeeze(2).flatten(1).sum(1) / math.log(2)
    assert torch.allclose(losses.categorical_nll_bits(logits, x), manual, atol=1e-4)
    # the categorical reconstruction is the mean of the distribution
    probs = logits.softmax(2)
    mean = (probs * torch.arange(256.0)[None, None, :, None, None]).sum(2)
    assert torch.equal(losses.reconstruct("categorical", logits), mean.round().to(torch.uint8))


def test_bits_per_dim_formula():
    # 8x8 latents, K = 512 over 32x32x3 sub-pixels: 64*9/3072 bits of KL per dim
    assert losses.bits_per_dim(4.0, 64, 512, 3072) == pytest.approx(4.0 + 64 * 9 / 3072)
    # a discretised Gaussian never costs more than 8 bits, and more error costs more bits
    assert losses.gaussian_bits_per_subpixel(1.0) == 8.0
    assert losses.gaussian_bits_per_subpixel(1e-4) < losses.gaussian_bits_per_subpixel(1e-3)


def test_evaluate_bound_is_consistent():
    torch.manual_seed(0)
    m = VQVAE(tiny(in_channels=1, likelihood="categorical"))
    x = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    r = evaluate(m, x, batch_size=4)
    nll = losses.categorical_nll_bits(m.eval()(x).out, x).sum().item()
    assert r["recon_bits_per_dim"] == pytest.approx(nll / (6 * 64), rel=1e-5)
    assert r["bits_per_dim"] == pytest.approx(r["recon_bits_per_dim"] + 4 * 4 / 64, rel=1e-6)
    assert r["usage_pct"] == pytest.approx(100 * (16 - r["dead_codes"]) / 16)


def test_reconstruct_pads_odd_sizes():
    m = VQVAE(tiny(in_channels=3))
    x = torch.randint(0, 256, (1, 3, 13, 22), dtype=torch.uint8)
    assert reconstruct(m, x).shape == x.shape


def test_psnr_and_ssim_oracles():
    a = torch.full((1, 1, 16, 16), 100, dtype=torch.uint8)
    b = a + 10
    mse = metrics.mse_per_image(a, b).item()
    assert mse == pytest.approx((10 / 255) ** 2)
    assert metrics.psnr_from_mse(mse) == pytest.approx(20 * math.log10(25.5))
    assert metrics.ssim_per_image(a, a).item() == pytest.approx(1.0)
    # constant images: SSIM reduces to the luminance term
    mu_a, mu_b, c1 = 100 / 255, 110 / 255, 0.01**2
    want = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    assert metrics.ssim_per_image(a, b).item() == pytest.approx(want, rel=1e-5)
    rng = np.random.default_rng(0)
    noisy = torch.from_numpy(rng.integers(0, 256, (1, 3, 32, 32), dtype=np.uint8))
    assert metrics.ssim_per_image(noisy, torch.full_like(noisy, 128)).item() < 0.1


def test_factory_and_bad_config():
    from vqvae.core.errors import ConfigError

    assert isinstance(create_model("vqvae", tiny()), VQVAE)
    with pytest.raises(ConfigError, match="unknown model"):
        create_model("nope", tiny())
    with pytest.raises(ConfigError, match="in_channels"):
        VQVAE(tiny(in_channels=0))
