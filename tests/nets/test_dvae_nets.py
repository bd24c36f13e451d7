"""DALL-E's dVAE nets (vqvae.nets.dvae): the released architecture's layout, shapes, near-identity init, and training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vqvae.core.errors import ConfigError
from vqvae.image.dvae import DVAE, DVAEConfig
from vqvae.nets.dvae import DalleDecoder, DalleEncoder, _Block


def test_encoder_layout_is_dalles():
    enc = DalleEncoder(3, 256, 2, 3, 8192)  # DALL-E's sizes
    blocks = [m for m in enc.modules() if isinstance(m, _Block)]
    assert [b.res_path[-1].out_channels for b in blocks] == [256, 256, 512, 512, 1024, 1024, 2048, 2048]
    assert all(b.post_gain == 1 / 64 for b in blocks)  # 1 / n_layers^2, n_layers = 4 groups x 2 blocks
    assert [m.kernel_size for m in blocks[0].res_path if isinstance(m, nn.Conv2d)] == [(3, 3)] * 3 + [(1, 1)]
    assert blocks[0].res_path[1].out_channels == 64  # bottleneck: n_out / 4
    assert sum(isinstance(m, nn.MaxPool2d) for m in enc.modules()) == 3
    first = enc.net[0]
    assert first.kernel_size == (7, 7) and first.out_channels == 256 and enc.net[-1].out_channels == 8192


def test_decoder_layout_and_shapes():
    dec = DalleDecoder(3, 8, 1, 2, 16, out_bins=2)
    blocks = [m for m in dec.modules() if isinstance(m, _Block)]
    assert [b.res_path[-1].out_channels for b in blocks] == [32, 16, 8]
    assert [m.kernel_size for m in blocks[0].res_path if isinstance(m, nn.Conv2d)] == [(1, 1)] + [(3, 3)] * 3
    assert sum(isinstance(m, nn.Upsample) for m in dec.modules()) == 2
    assert dec(torch.randn(2, 16, 5, 5)).shape == (2, 3, 2, 20, 20)
    enc = DalleEncoder(3, 8, 1, 2, 32)
    assert enc(torch.randn(2, 3, 20, 20)).shape == (2, 32, 5, 5)


def test_blocks_start_near_the_identity():
    torch.manual_seed(0)
    b = _Block(16, 16, n_layers=8, kernels=(3, 3, 3, 1))
    x = torch.randn(4, 16, 8, 8)
    assert (b(x) - x).abs().mean() < 0.05 * x.abs().mean()


def test_dvae_with_dalle_nets_trains_and_keeps_the_contract():
    torch.manual_seed(0)
    cfg = DVAEConfig(in_channels=3, net="dalle", hidden=8, n_blk_per_group=1, num_downsamples=2, codebook_size=32, embedding_dim=16,
                     tau_steps=50, kl_steps=10)
    m = DVAE(cfg)
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    opt = torch.optim.Adam(m.parameters(), 2e-3)
    losses = []
    for _ in range(60):
        out = m(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.recon_loss.item())
    assert sum(losses[-5:]) < sum(losses[:5])
    m.eval()
    codes = m.encode(x)
    assert codes.shape == (4, 4, 4) and int(codes.max()) < 32
    assert m.decode(codes).shape == x.shape and m.decode(codes).dtype == torch.uint8


def test_bad_net():
    with pytest.raises(ConfigError, match="model.net"):
        DVAE(DVAEConfig(in_channels=3, net="resnet"))
