"""Encoder-side rate-distortion optimisation of the codec's codes (vqvae.codec.refine)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.codec.test_codec import _image, _models
from vqvae.codec import CodecError, entropy
from vqvae.codec.codec import Codec
from vqvae.codec.refine import quantize_prefix, sse_per_bit


@pytest.fixture(scope="module")
def codec():
    return Codec("test-model", *_models())


def _padded(codec, x):
    unit = codec.f * codec.tile
    h, w = x.shape[-2:]
    xp = F.pad(x[None].float(), (0, -(-w // unit) * unit - w, 0, -(-h // unit) * unit - h), mode="replicate")
    return xp.round().to(torch.uint8)


def _lagrangians(codec, x, quality, steps):
    """SSE + lambda * bits of the greedy and the refined file of ``x`` (lambda as the refiner sets it)
    -> (greedy cost, refined cost, refined bytes)."""
    xp = _padded(codec, x)
    mask = torch.zeros(1, 1, *xp.shape[-2:])
    mask[..., : x.shape[1], : x.shape[2]] = 1
    slope, _, _ = codec.refiner.slope(xp, codec.encode_latents(xp), quality, mask)
    assert slope > 0
    def sse_bits_file(refine):
        data, st = codec.compress(x, quality, refine=refine)
        return float(((codec.decompress(data).float() - x.float()) ** 2).sum()), st.nll_bits, data

    sse0, bits0, _ = sse_bits_file(0)
    sse1, bits1, refined = sse_bits_file(steps)
    lam = sse_per_bit(slope, sse0, bits0)
    return sse0 + lam * bits0, sse1 + lam * bits1, refined


def test_quantize_prefix_matches_a_numpy_residual_nearest_code_oracle(codec):
    q = codec.tokenizer.quantizer
    z = torch.randn(2, q.embedding_dim, 5, 6) * 0.3
    books = [st.codebook.detach().double().numpy() for st in q.stages]
    vecs = z.permute(0, 2, 3, 1).reshape(-1, q.embedding_dim).double().numpy()
    for s in (1, 2, 3):
        residual, want, total = vecs.copy(), [], np.zeros_like(vecs)
        for book in books[:s]:
            i = ((residual[:, None] - book[None]) ** 2).sum(-1).argmin(1)
            want.append(i)
            residual, total = residual - book[i], total + book[i]
        idx, zq = quantize_prefix(q, z, s)
        assert np.array_equal(idx.permute(0, 2, 3, 1).reshape(-1, s).numpy(), np.stack(want, 1))
        assert np.allclose(zq.permute(0, 2, 3, 1).reshape(-1, q.embedding_dim).numpy(), total, atol=1e-6)


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
    j0, j1, refined = _lagrangians(codec, x, 2, 8)
    assert j1 < j0 * (1 - 1e-4)  # strictly better: the search found something
    # an ordinary file: it decodes to the decoder's image of the refined codes
    codes = codec.refiner.refine(_padded(codec, x), 32, 32, 2, steps=8)
    assert torch.equal(codec.decompress(refined), codec.decode_codes(codes[None])[0])


def test_refine_is_deterministic_and_searches_every_window():
    c = Codec("test-model", *_models())
    c.window = 4  # 12 windows of one 4 x 4 tile each
    x = _image(h=37, w=50, seed=4)
    j0, j1, a = _lagrangians(c, x, 3, 20)
    assert j1 < j0 * (1 - 1e-4)  # window by window, the image's cost still falls
    assert a == c.compress(x, 3, refine=20)[0]
    xp = _padded(c, x)
    refined, greedy = c.refiner.refine(xp, 50, 37, 3, steps=20), c.tokenizer.encode(xp)[0]
    changed = (refined != greedy).reshape(3, 3, 4, 4, 4).any(dim=(0, 2, 4))  # per window
    assert changed.float().mean() > 0.5, changed  # the search ran, and kept other codes, in most windows
    assert torch.equal(c.decompress(a), c.decode_codes(refined[None])[0, :, :37, :50])


@pytest.mark.parametrize("bad", [-1, 1001, 1.5, True, "3"])
def test_bad_refine_values_are_clear_errors(codec, bad):
    with pytest.raises(CodecError, match="refine must be"):
        codec.compress(_image(), 1, refine=bad)


def test_a_single_codebook_model_refines_too():
    from vqvae.core.config import build
    from vqvae.registry import create_model

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
