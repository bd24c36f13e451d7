"""Large images go through the tokenizers window by window (bounded memory): the same codes and images as one pass,
for the paper's nets at any depth and for DALL-E's nets (their context is sized from the config)."""

from __future__ import annotations

import pytest
import torch

from vqvae.core.config import build
from vqvae.image import inference
from vqvae.registry import create_model


def _model(arch: str, **model):
    torch.manual_seed(0)
    cfg = build({"arch": arch, "model": {"in_channels": 3, "codebook_size": 16, "embedding_dim": 4, "num_downsamples": 2, **model}})
    return create_model(arch, cfg.model).eval()


@pytest.mark.parametrize("arch, model", [
    ("vqvae", {"hidden": 8, "res_hidden": 4, "num_res_blocks": 4}),
    ("dvae", {"hidden": 8, "net": "dalle", "n_blk_per_group": 1}),
])
def test_windowed_codes_and_images_equal_one_pass(monkeypatch, arch, model):
    m = _model(arch, **model)
    x = torch.randint(0, 256, (2, 3, 94, 90), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))  # padded to 96 x 92
    whole = m.encode(inference.pad_to_multiple(x, 4))
    monkeypatch.setattr(inference, "WINDOW", 6)  # 24 x 23 cells: 16 windows, every seam inside the image
    codes = torch.from_numpy(inference.encode(m, x))
    assert torch.equal(codes, whole)
    img_whole = m.decode(whole)
    img = inference.decode(m, codes)
    assert img.shape == img_whole.shape and (img.int() - img_whole.int()).abs().max() <= 1
    rec = inference.reconstruct(m, x)
    assert rec.shape == x.shape and (rec.int() - img_whole[..., :94, :90].int()).abs().max() <= 1


def test_padding_keeps_the_dtype_and_replicates_the_edges():
    x = torch.arange(2 * 3 * 5, dtype=torch.uint8).view(1, 2, 3, 5)
    y = inference.pad_to_multiple(x, 4)
    assert y.dtype == torch.uint8 and y.shape == (1, 2, 4, 8)
    assert torch.equal(y[..., :3, :5], x) and torch.equal(y[..., 3, :5], x[..., 2, :]) and torch.equal(y[..., :3, 7], x[..., :, 4])
    assert torch.equal(y[..., 3, 7], x[..., 2, 4])
