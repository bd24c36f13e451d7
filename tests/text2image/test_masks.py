"""DALL-E's attention masks against references written from the paper's description, not from the code's formulas.

DALL-E (Ramesh et al. 2021, appendix B.1, figure 11), for a 4-wide image: the row mask lets an image token attend
to the previous 5 image tokens in raster order (itself included), the column mask to the tokens above it in its
column (and itself), the convolutional mask to a causal (2r+1) x (2r+1) window around it; text attends causally to
text and every image token attends to all text.
"""

from __future__ import annotations

import pytest
import torch

from vqvae.text2image.masks import attention_mask, PATTERNS

# Figure 11a's row mask for a 4 x 4 image, image part only: row p lists the image tokens token p may attend to.
ROW_4X4 = """
1...............
11..............
111.............
1111............
11111...........
.11111..........
..11111.........
...11111........
....11111.......
.....11111......
......11111.....
.......11111....
........11111...
.........11111..
..........11111.
...........11111
"""


def paper_reference(pattern: str, t: int, h: int, w: int, r: int) -> torch.Tensor:
    """The mask built token by token from the sets the paper names (raster index p of image token (p // w, p % w))."""
    L = t + h * w
    m = torch.zeros(L, L, dtype=torch.bool)
    for q in range(L):
        if q < t:  # text: the standard causal mask over text
            m[q, : q + 1] = True
            continue
        m[q, :t] = True  # every image token sees the whole text
        p = q - t
        if pattern == "full":
            keys = range(p + 1)
        elif pattern == "row":  # the last w + 1 image tokens in raster order, up to itself
            keys = list(range(p + 1))[-(w + 1):]
        elif pattern == "column":  # itself and the tokens above it
            keys = [p - k * w for k in range(p // w + 1)]
        else:  # the causal part of the window
            i, j = divmod(p, w)
            keys = [a * w + b for a in range(i - r, i + 1) for b in range(j - r, j + r + 1)
                    if 0 <= a and 0 <= b < w and a * w + b <= p]
        for k in keys:
            m[q, t + k] = True
    return m


def test_row_mask_is_figure_11a():
    want = torch.tensor([[c == "1" for c in line] for line in ROW_4X4.split()])
    got = attention_mask("row", 0, 4, 4)
    assert torch.equal(got, want)
    assert int(got[8].sum()) == 5 and bool(got[8, 4])  # token 8 sees tokens 4..8: the one right above it among them


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("t,h,w,r", [(3, 4, 5, 1), (0, 3, 3, 1), (5, 2, 6, 2), (6, 4, 4, 1)])
def test_masks_match_the_papers_description(pattern, t, h, w, r):
    m = attention_mask(pattern, t, h, w, radius=r)
    assert torch.equal(m, paper_reference(pattern, t, h, w, r))
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
