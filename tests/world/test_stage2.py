"""The second stage (three latents over a code map, a PixelCNN decoder): causality, conditioning, what training
learns on maps made from three hidden factors, and its measures."""

from __future__ import annotations

import pytest
import torch

from vqvae.core.task import raw
from vqvae.world.stage2 import Stage2, Stage2Config
from vqvae.world.tasks import evaluate_stage2

TINY = dict(codebook_size=6, height=8, width=8, latents=3, latent_codebook_size=4, latent_dim=4, embed_dim=8, hidden=16,
            cond_channels=8, pixel_channels=16, pixel_layers=3)


def _factor_maps(n: int, seed: int = 0) -> torch.Tensor:
    """Code maps fixed by three hidden factors of 4 values: the top, middle and bottom bands' codes (a decoder can
    model each band's repeats on its own, but not which code a band starts with)."""
    g = torch.Generator().manual_seed(seed)
    f = torch.randint(0, 4, (n, 3), generator=g)
    maps = torch.empty(n, 8, 8, dtype=torch.long)
    for b, rows in enumerate((slice(0, 3), slice(3, 5), slice(5, 8))):
        maps[:, rows] = (f[:, b] + b)[:, None, None] % 6
    return maps


@torch.no_grad()
def test_the_decoder_is_causal_over_codes_and_conditioned_on_every_latent():
    torch.manual_seed(0)
    m = Stage2(Stage2Config(**TINY)).eval()
    x = torch.randint(0, 6, (2, 8, 8))
    z = m.encode(x)
    assert z.shape == (2, 3) and z.dtype == torch.long and int(z.max()) < 4
    feats = m.features(m.lookup(z))
    base = m.pixelcnn.logits(x[:, None], feats)
    later = x.clone()
    later[:, 4, 3:] = (later[:, 4, 3:] + 1) % 6
    later[:, 5:] = (later[:, 5:] + 1) % 6
    changed = (m.pixelcnn.logits(later[:, None], feats) - base).abs().amax(dim=(1, 2)).flatten(1)
    assert float(changed[:, : 4 * 8 + 3 + 1].max()) == 0.0 and float(changed[:, 4 * 8 + 4 :].max()) > 0
    for g in range(3):  # each latent, changed alone, moves the decoder's output
        other = z.clone()
        other[:, g] = (other[:, g] + 1) % 4
        assert float((m.nll_bits(x, other) - m.nll_bits(x, z)).abs().max()) > 0
    assert len(m.quantizer.groups) == 3  # three codebooks, one per latent


def test_training_puts_the_hidden_factors_into_the_latents_and_the_measures_see_it():
    torch.manual_seed(0)
    m = Stage2(Stage2Config(**TINY, quantizer="vq", kmeans_init=False))
    data, test = _factor_maps(512), _factor_maps(256, seed=1)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    before = evaluate_stage2(m, test)
    for step in range(150):
        x = data[torch.randint(0, 512, (64,), generator=torch.Generator().manual_seed(step))]
        loss = m(x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate_stage2(m, test)
    # each map's three bands carry log2(4) bits each: 6 bits that only the latents can give the decoder
    assert after["bits_per_map"] < before["bits_per_map"] - 50
    assert after["information_bits"] > 2.0, after
    assert after["information_bits"] == pytest.approx(after["swapped_bits_per_map"] - after["bits_per_map"])
    assert 0 < after["latent_usage_pct"] <= 100 and after["maps"] == 256


def test_decoding_draws_code_maps_from_the_latents_reproducibly():
    torch.manual_seed(0)
    m = Stage2(Stage2Config(**TINY)).eval()
    z = torch.tensor([[0, 1, 2], [3, 3, 3]])
    a = m.decode(z, torch.Generator().manual_seed(1))
    b = m.decode(z, torch.Generator().manual_seed(1))
    assert a.shape == (2, 8, 8) and a.dtype == torch.long and torch.equal(a, b) and int(a.max()) < 6
    with pytest.raises(ValueError, match=r"expected latents \(B, 3\)"):
        m.decode(z[:, :2])
    with pytest.raises(ValueError, match=r"expected int64 code maps \(B, 8, 8\)"):
        m.encode(torch.zeros(2, 7, 8, dtype=torch.long))
    assert raw(m) is m
