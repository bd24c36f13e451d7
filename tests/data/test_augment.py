"""DALL-E's preprocessing: output sizes, reproducibility, flips only in stage 1, near-centre crops in stage 2."""

from __future__ import annotations

import pytest
import torch

from vqvae.data.augment import dvae_train_crop, transformer_crop


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


def test_trainer_applies_dalle_stage1_preprocessing(tmp_path):
    """data.augment=dalle: every training batch is DALL-E's stage-1 crop of the in-memory images, to data.crop."""
    from vqvae.core.config import build, load_config
    from vqvae.data.sets import ImageSet
    from vqvae.core.errors import ConfigError
    from vqvae.data.augment import dvae_train_crop
    from vqvae.core.train import Trainer

    x = torch.randint(0, 256, (8, 3, 40, 40), dtype=torch.uint8)
    cfg = load_config("tiny", None, {"data": {"augment": "dalle", "crop": 16}, "train": {"batch_size": 4, "steps": 1}})
    tr = Trainer(cfg, tmp_path / "run", ImageSet(x, None, None, "t"), ImageSet(x[:2], None, None, "t"), progress=False)
    xb, _ = tr.batch(3)
    assert xb.shape == (4, 3, 16, 16)
    idx = tr.sampler.indices(3)
    g = torch.Generator().manual_seed(cfg.train.seed * 7919 + 3)
    want = torch.stack([dvae_train_crop(x[i], 16, g) for i in idx])
    assert torch.equal(xb, want)
    with pytest.raises(ConfigError, match="data.augment"):
        build({**cfg.to_dict(), "data": {**cfg.to_dict()["data"], "crop": 0}})
