"""DALL-E's attention masks against a naive per-pair reference."""

from __future__ import annotations

import itertools

import pytest
import torch

from vqvae.models.masks import PATTERNS, attention_mask


def naive(pattern, t, h, w, r):
    L = t + h * w
    m = torch.zeros(L, L, dtype=torch.bool)
    for q, k in itertools.product(range(L), range(L)):
        if k > q:
            continue
        if q < t or k < t:  # text queries see earlier text; image queries see all text
            m[q, k] = True
            continue
        (qi, qj), (ki, kj) = divmod(q - t, w), divmod(k - t, w)
        m[q, k] = {"full": True, "row": (q - k) < w, "column": qj == kj, "conv": abs(qi - ki) <= r and abs(qj - kj) <= r}[pattern]
    return m


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("t,h,w,r", [(3, 4, 5, 1), (0, 3, 3, 1), (5, 2, 6, 2)])
def test_masks_match_the_naive_reference(pattern, t, h, w, r):
    m = attention_mask(pattern, t, h, w, radius=r)
    assert torch.equal(m, naive(pattern, t, h, w, r))
    assert m.diagonal().all()  # every token attends to itself (no empty softmax rows)


def test_masked_sdpa_equals_a_hand_written_masked_softmax():
    torch.manual_seed(0)
    m = attention_mask("conv", 4, 3, 4, radius=1)
    q, k, v = (torch.randn(2, 2, m.shape[0], 8) for _ in range(3))
    got = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m)
    att = (q @ k.transpose(-1, -2)) / 8**0.5
    want = att.masked_fill(~m, float("-inf")).softmax(-1) @ v
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="pattern"):
        attention_mask("diagonal", 1, 2, 2)
