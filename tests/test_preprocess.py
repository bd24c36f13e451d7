"""DALL-E's preprocessing: output sizes, reproducibility, flips only in stage 1, near-centre crops in stage 2."""

from __future__ import annotations

import pytest
import torch

from vqvae.preprocess import dvae_train_crop, transformer_crop


def _img(h=90, w=140):
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), torch.full_like(xx, 7)]).to(torch.uint8)


def test_sizes_and_reproducibility():
    x = _img()
    for fn in (dvae_train_crop, transformer_crop):
        a = fn(x, 32, torch.Generator().manual_seed(1))
        assert a.shape == (3, 32, 32) and a.dtype == torch.uint8
        assert torch.equal(a, fn(x, 32, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError):
        dvae_train_crop(x.float(), 32, torch.Generator())


def test_stage1_flips_and_zooms_stage2_never_flips():
    x = _img()  # the red channel increases left to right, so a flip shows as a decrease
    directions = set()
    for seed in range(40):
        y = dvae_train_crop(x, 32, torch.Generator().manual_seed(seed))
        directions.add(bool(y[0, 16, 31] > y[0, 16, 0]))
    assert directions == {True, False}
    for seed in range(40):
        y = transformer_crop(x, 32, torch.Generator().manual_seed(seed))
        assert y[0, 16, 31] > y[0, 16, 0]


def test_stage2_stays_near_the_centre():
    x = _img(100, 300)  # margin 200: the square may move at most 25 from centre
    for seed in range(30):
        y = transformer_crop(x, 64, torch.Generator().manual_seed(seed))
        # the crop's mean red value locates it: the centred square spans columns 100..199 (red ~ 85..170)
        assert 70 < float(y[0].float().mean()) < 185
