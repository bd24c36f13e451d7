"""Attention masks of DALL-E's transformer over one sequence ``[text tokens | image tokens]``.

DALL-E (Ramesh et al. 2021, appendix B.1, figure 11) uses Sparse-Transformer
patterns (Child et al. 2019) for image-to-image attention, chosen per layer;
every pattern is causal, text tokens attend causally to text, and every image
token attends to all text tokens. With the image a ``h x w`` grid in raster
order, image token ``(i, j)`` may attend to image token ``(i', j')`` at or
before it when:

* ``full``: always (dense causal attention);
* ``row``: it is among the last ``w + 1`` positions up to itself (figure 11a:
  the previous 5 image tokens for a 4-wide image, itself included): the rest of
  its own row to its left and the row above from its own column on, so the
  token right above it is always in view;
* ``column``: ``j' == j`` (its column, above it);
* ``conv``: ``|i - i'| <= r`` and ``|j - j'| <= r`` (a ``(2r+1)^2`` window,
  DALL-E's last layer with an 11 x 11 kernel, ``r = 5``).

:func:`attention_mask` builds the dense boolean ``(L, L)`` mask (True = may
attend) for ``F.scaled_dot_product_attention``; on CPU dense masks are what
SDPA takes, and a GPU run can turn the same predicate into FlexAttention block
masks.
"""

from __future__ import annotations

import torch

PATTERNS = ("full", "row", "column", "conv")


def attention_mask(pattern: str, text_len: int, h: int, w: int, radius: int = 5, device=None) -> torch.Tensor:
    """Dense ``(L, L)`` bool mask, ``L = text_len + h * w``: entry ``[q, k]`` says whether query ``q`` may attend to key ``k``."""
    if pattern not in PATTERNS:
        raise ValueError(f"attention pattern must be one of {PATTERNS}, got {pattern!r}")
    n_img = h * w
    L = text_len + n_img
    q = torch.arange(L, device=device)[:, None]
    k = torch.arange(L, device=device)[None, :]
    causal = k <= q
    if pattern == "full":
        return causal
    img_q, img_k = q >= text_len, k >= text_len
    qi, ki = (q - text_len).clamp(min=0), (k - text_len).clamp(min=0)
    if pattern == "row":
        allowed = qi - ki <= w
    elif pattern == "column":
        allowed = (qi % w) == (ki % w)
    else:
        allowed = ((qi // w - ki // w).abs() <= radius) & ((qi % w - ki % w).abs() <= radius)
    # text queries: causal over text; image queries: all text, and the pattern over image keys
    return causal & (~img_q | ~img_k | allowed)
