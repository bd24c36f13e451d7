"""The exactness argument for the nearest-code kernel's tf32x3 mode (vqvae.quantize.nearest_triton), checked by an
independent emulation of its three TF32 passes against float64: no Triton or GPU needed."""

from __future__ import annotations

import torch


def tf32(x: torch.Tensor) -> torch.Tensor:
    """Round fp32 to TF32 (10 explicit mantissa bits), to nearest, as the tensor cores read their operands."""
    bits = x.float().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32)


def dot_tf32x3(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``x @ e.T`` as the kernel computes it: hi.hi' + hi.lo' + lo.hi' with fp32 accumulation."""
    xh, eh = tf32(x), tf32(e)
    xl, el = tf32(x - xh), tf32(e - eh)
    return xh @ eh.T + xh @ el.T + xl @ eh.T


def _disagreements(dot) -> tuple[int, int]:
    """Rows (of 4000) whose argmin of ||e||^2 - 2 x.e differs from float64's, outside near-ties; and the near-ties."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(64, 64, generator=g)  # a trained codebook's crowding: codes close to each other
    e = (centres.repeat_interleave(8, 0) + 0.02 * torch.randn(512, 64, generator=g))
    x = centres[torch.randint(0, 64, (4000,), generator=g)] + 0.05 * torch.randn(4000, 64, generator=g)
    exact = (e.double() ** 2).sum(1) - 2 * x.double() @ e.double().T
    srt = exact.sort(1).values
    tie = (srt[:, 1] - srt[:, 0]) <= 1e-6 * (1 + (x.double() ** 2).sum(1) + (e.double() ** 2).sum(1).max())
    got = ((e * e).sum(1) - 2 * dot(x, e)).argmin(1)
    return int(((got != exact.argmin(1)) & ~tie).sum()), int(tie.sum())


def test_tf32_rounding_keeps_eleven_significant_bits():
    x = torch.tensor([1 + 2**-10, 1 + 2**-11 + 2**-13, 1 + 2**-12, 3.0])
    assert tf32(x).tolist() == [1 + 2**-10, 1 + 2**-10, 1.0, 3.0]
    y = torch.randn(10000, generator=torch.Generator().manual_seed(1))
    hi = tf32(y)
    assert ((y - hi).abs() <= y.abs() * 2**-11).all() and ((y - hi - tf32(y - hi)).abs() <= y.abs() * 2**-22).all()


def test_three_tf32_passes_find_float64s_nearest_codes_as_fp32_does_and_one_pass_does_not():
    fp32, ties = _disagreements(lambda x, e: x @ e.T)
    three, _ = _disagreements(dot_tf32x3)
    one, _ = _disagreements(lambda x, e: tf32(x) @ tf32(e).T)
    assert fp32 == 0 and three == 0, (fp32, three)  # outside near-ties: float64's choice, like fp32
    assert one > 0, one  # the argument has teeth: a single TF32 pass misorders codes
    assert ties < 400  # near-ties are a small minority of the rows
