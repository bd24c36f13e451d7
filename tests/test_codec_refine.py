"""Encoder-side rate-distortion optimisation of the codec's codes (vqvae.codec.refine)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.test_codec import _image, _models
from vqvae.codec import CodecError, entropy
from vqvae.codec.codec import Codec
from vqvae.codec.refine import quantize_prefix


@pytest.fixture(scope="module")
def codec():
    return Codec("test-model", *_models())


def _padded(codec, x):
    unit = codec.f * codec.tile
    h, w = x.shape[-2:]
    xp = F.pad(x[None].float(), (0, -(-w // unit) * unit - w, 0, -(-h // unit) * unit - h), mode="replicate")
    return xp.round().to(torch.uint8)


def _lagrangian(codec, x, data, stats, lam):
    y = codec.decompress(data)
    return float(((y.float() - x.float()) ** 2).sum()) + lam * stats.nll_bits


def test_quantize_prefix_is_the_residual_quantizers_greedy_prefix(codec):
    q = codec.tokenizer.quantizer
    z = torch.randn(2, q.embedding_dim, 5, 6) * 0.3
    for s in (1, 2, 3):
        idx, total = quantize_prefix(q, z, s)
        assert torch.equal(idx, q.quantize(z)[:, :s])
        assert torch.allclose(total, q.lookup(idx), atol=1e-6)


def test_sequence_nll_equals_the_kv_cached_coders_nll(codec):
    g = torch.Generator().manual_seed(3)
    for length in (codec.prior.config.seq_len, 2 * codec.tile**2):  # whole sequences and a quality prefix
        seq = torch.randint(0, 16, (5, length), generator=g)
        _, coder_bits = entropy.encode(codec.prior, seq)
        bits = float(codec.prior.sequence_nll(seq).sum()) / math.log(2)
        assert bits == pytest.approx(coder_bits, rel=1e-9)


@pytest.mark.parametrize("window", [4, 64])
def test_zero_steps_give_the_greedy_codes_in_windows_or_not(window):
    c = Codec("test-model", *_models())
    c.window = window  # 4 latent cells: a 37 x 50 image is 12 windows
    x = _image()
    xp = _padded(c, x)
    for q in (1, 3):
        codes = c.refiner.refine(xp, 50, 37, q, steps=0)
        assert torch.equal(codes, c.tokenizer.encode(xp)[0, :q])


def test_refined_codes_lower_the_lagrangian_and_decode_with_the_same_decoder(codec):
    x = _image(h=32, w=32, seed=2)  # one window: the search's objective is exactly the image's
    xp = _padded(codec, x)
    mask = torch.ones(1, 1, *xp.shape[-2:])
    with torch.no_grad():
        z = codec.encode_latents(xp)
    slope, _, _ = codec.refiner.slope(xp, z, 2, mask)
    greedy, st0 = codec.compress(x, 2)
    refined, st1 = codec.compress(x, 2, refine=8)
    assert slope > 0
    sse0 = float(((codec.decompress(greedy).float() - x.float()) ** 2).sum())
    lam = slope * sse0 * math.log(10) / (10 * math.log(2) * st0.nll_bits)  # SSE per bit, as the refiner sets it
    j0, j1 = _lagrangian(codec, x, greedy, st0, lam), _lagrangian(codec, x, refined, st1, lam)
    assert j1 < j0 * (1 - 1e-4)  # strictly better: the search found something
    # an ordinary file: it decodes to the decoder's image of the refined codes
    codes = codec.refiner.refine(xp, 32, 32, 2, steps=8)
    assert torch.equal(codec.decompress(refined), codec.decode_codes(codes[None])[0])


def test_refine_is_deterministic_and_windows_cover_the_image():
    c = Codec("test-model", *_models())
    c.window = 4
    x = _image(h=37, w=50, seed=4)
    a, sa = c.compress(x, 3, refine=3)
    b, _ = c.compress(x, 3, refine=3)
    assert a == b
    assert c.decompress(a).shape == x.shape
    assert sa.bpp > 0


@pytest.mark.parametrize("bad", [-1, 1001, 1.5, True, "3"])
def test_bad_refine_values_are_clear_errors(codec, bad):
    with pytest.raises(CodecError, match="refine must be"):
        codec.compress(_image(), 1, refine=bad)


def test_a_single_codebook_model_refines_too():
    from vqvae.config import build
    from vqvae.models import create_model

    torch.manual_seed(0)
    tok_cfg = build({"arch": "vqvae", "model": {"in_channels": 3, "hidden": 16, "res_hidden": 8, "num_res_blocks": 1, "num_downsamples": 2,
                                                "codebook_size": 16, "embedding_dim": 4, "num_codebooks": 1, "quantizer": "ema"}})
    tok = create_model("vqvae", tok_cfg.model).eval()
    with torch.no_grad():
        tok.quantizer.embedding.copy_(torch.randn_like(tok.quantizer.embedding) * 0.3)
    pr_cfg = build({"arch": "transformer", "model": {"codebook_size": 16, "height": 4, "width": 4, "n_layer": 1, "n_head": 2, "n_embd": 16}})
    c = Codec("one-codebook", tok_cfg, tok, pr_cfg, create_model("transformer", pr_cfg.model))
    x = _image(h=20, w=24, seed=5)
    xp = _padded(c, x)
    assert torch.equal(c.refiner.refine(xp, 24, 20, 1, steps=0)[0], c.tokenizer.encode(xp)[0])
    data, _ = c.compress(x, refine=3)
    assert c.decompress(data).shape == x.shape
