"""The posterior-collapse study's parts: the PixelCNN decoder over pixels and the information measures."""

from __future__ import annotations

import pytest
import torch

from vqvae.baselines import bounds
from vqvae.baselines.collapse import latent_information, swap_figure
from vqvae.baselines.models import VQ, GaussianVAE, GaussianVAEConfig, VQConfig
from vqvae.baselines.pixel_decoder import PixelDecoder

NET = dict(in_channels=1, hidden=8, res_hidden=4, num_res_blocks=1, num_downsamples=2, decoder="pixelcnn",
           cond_channels=4, pixel_channels=8, pixel_layers=2)


def _images(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@torch.no_grad()
def test_the_pixel_decoder_sees_only_earlier_pixels_and_the_latents():
    torch.manual_seed(0)
    dec = PixelDecoder(cond_channels=3, channels=8, layers=3).eval()
    x, feats = _images(2, 6), torch.randn(2, 3, 6, 6)
    base = dec.logits(x, feats)
    assert base.shape == (2, 1, 256, 6, 6)
    i, j = 3, 2
    later = x.clone()
    later[:, 0, i, j:] = 255 - later[:, 0, i, j:]  # the pixel itself and everything after it in raster order
    later[:, 0, i + 1 :] = 255 - later[:, 0, i + 1 :]
    changed = (dec.logits(later, feats) - base).abs().amax(dim=(1, 2))  # (B, H, W)
    flat = changed.flatten(1)
    pos = i * 6 + j
    assert float(flat[:, : pos + 1].max()) == 0.0  # no pixel up to (i, j) sees (i, j) or later ones
    assert float(flat[:, pos + 1 :].max()) > 0  # the next ones do
    assert float((dec.logits(x, feats + 1) - base).abs().max()) > 0  # every pixel is conditioned on the latents
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    s1, s2 = dec.sample_pixels(feats, g1), dec.sample_pixels(feats, g2)
    assert s1.dtype == torch.uint8 and s1.shape == (2, 1, 6, 6) and torch.equal(s1, s2)


@torch.no_grad()
def test_sampling_stops_each_pass_at_the_current_row_and_draws_what_full_passes_draw():
    """The sampler's passes over rows 0..i only (the oracle: a full-map pass per position, as before)."""
    torch.manual_seed(1)
    dec = PixelDecoder(cond_channels=3, channels=8, layers=3, values=11).eval()
    feats = torch.randn(2, 3, 5, 4)
    g = torch.Generator().manual_seed(5)
    fast = dec.sample_values(feats, g, temperature=0.7)
    g.manual_seed(5)
    x = torch.zeros(2, 1, 5, 4, dtype=torch.long)
    for i in range(5):
        for j in range(4):
            probs = (dec.logits(x, feats)[:, 0, :, i, j] / 0.7).softmax(-1)
            x[:, 0, i, j] = torch.multinomial(probs, 1, generator=g)[:, 0]
    assert fast.dtype == torch.long and int(fast.max()) < 11 and torch.equal(fast, x)


def test_a_decoder_that_ignores_the_latents_draws_no_information_from_them(tmp_path):
    torch.manual_seed(0)
    model = GaussianVAE(GaussianVAEConfig(**NET, latent_dim=2))
    x = _images(5)
    m = latent_information(model, x, batch_size=2)  # uneven batches: every image is paired with the next one
    assert m["information_bits"] == pytest.approx(m["nll_swapped_bits"] - m["nll_true_bits"])
    assert m["information_bits"] != 0 and m["kl_nats"] > 0
    for proj in model.pixelcnn.cond_proj:  # cut the latents off
        torch.nn.init.zeros_(proj.weight), torch.nn.init.zeros_(proj.bias)
    cut = latent_information(model, x, batch_size=2)
    assert cut["information_bits"] == pytest.approx(0.0, abs=1e-9)
    swap_figure({"vae": model}, x[:3], tmp_path / "swap.png")
    assert (tmp_path / "swap.png").is_file()


def test_vq_bottleneck_with_the_pixel_decoder_has_a_deterministic_posterior():
    torch.manual_seed(0)
    model = VQ(VQConfig(**NET, codebook_size=8, embedding_dim=4))
    x = _images(4)
    model(x)  # the k-means initialisation on a first training pass
    m = bounds.evaluate(model, x, k=8)
    assert m["iw_bits_per_dim"] == pytest.approx(m["elbo_bits_per_dim"], rel=1e-9)  # one-hot q: every bound is the ELBO
    assert m["kl_nats"] == pytest.approx(2 * 2 * torch.log(torch.tensor(8.0)).item())  # log K per latent, 2 x 2 latents
    codes = model.encode(x)
    assert codes.shape == (4, 2, 2) and model.decode(codes).shape == x.shape
