"""Training-time augmentation: random crops of clips and images, and DALL-E's preprocessing.

* :func:`random_crop`: a random window of each clip, or a random patch of each image, of a batch.

DALL-E's image preprocessing (Ramesh et al. 2021, appendix A.2 and B.1), on uint8 ``(C, H, W)`` tensors:

* Stage 1 (the dVAE), :func:`dvae_train_crop`: a random square crop of the
  image, resized (area interpolation) to a random side between 9/8 and 12/8 of
  the target, then a random ``target x target`` crop and a random horizontal flip.
* Stage 2 (the transformer), :func:`transformer_crop`: a square crop near the
  centre (shifted by at most 1/8 of the free margin), resized to
  9/8 of the target, a random ``target`` crop; no flip, so "left of" and
  "right of" in captions stay true.

Each takes a ``torch.Generator`` so data loading is reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _rand(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """Uniform in ``lo .. hi`` inclusive."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


def _area_resize(x: torch.Tensor, side: int) -> torch.Tensor:
    mode = "area" if side <= min(x.shape[-2:]) else "bicubic"
    y = F.interpolate(x[None].float(), size=(side, side), mode=mode, **({} if mode == "area" else {"align_corners": False}))[0]
    return y.round().clamp(0, 255).to(torch.uint8)


def _check(x: torch.Tensor, target: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 3:
        raise ValueError(f"expected a uint8 image (C, H, W), got {getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}")
    if target < 1:
        raise ValueError(f"target side must be >= 1, got {target}")


def dvae_train_crop(x: torch.Tensor, target: int, g: torch.Generator) -> torch.Tensor:
    _check(x, target)
    h, w = x.shape[-2:]
    s = min(h, w)
    top, left = _randint(g, 0, h - s), _randint(g, 0, w - s)
    sq = x[:, top : top + s, left : left + s]
    side = max(target, round(target * _rand(g, 9 / 8, 12 / 8)))
    y = _area_resize(sq, side)
    t, l_ = _randint(g, 0, side - target), _randint(g, 0, side - target)
    y = y[:, t : t + target, l_ : l_ + target]
    if float(torch.rand((), generator=g)) < 0.5:
        y = y.flip(-1)
    return y.contiguous()


def transformer_crop(x: torch.Tensor, target: int, g: torch.Generator) -> torch.Tensor:
    _check(x, target)
    h, w = x.shape[-2:]
    s = min(h, w)
    # near the centre: the square's offset from the centred position is at most 1/8 of the margin on each axis
    cy, cx = (h - s) // 2, (w - s) // 2
    top = min(max(cy + _randint(g, -((h - s) // 8), (h - s) // 8), 0), h - s)
    left = min(max(cx + _randint(g, -((w - s) // 8), (w - s) // 8), 0), w - s)
    side = max(target, round(target * 9 / 8))
    y = _area_resize(x[:, top : top + s, left : left + s], side)
    t, l_ = _randint(g, 0, side - target), _randint(g, 0, side - target)
    return y[:, t : t + target, l_ : l_ + target].contiguous()


def random_crop(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A random window of ``size`` samples of each clip ``(B, C, T)``, or a random ``size x size``
    patch of each image ``(B, C, H, W)``; inputs already that small are returned whole.

    The offsets are drawn on ``generator``'s device, which should be ``x``'s: one gather, no host round trip (a
    training step stays sync-free)."""
    b, dev = x.shape[0], x.device
    if x.ndim == 3:
        if x.shape[-1] <= size:
            return x
        start = torch.randint(0, x.shape[-1] - size + 1, (b,), generator=generator, device=generator.device).to(dev)
        idx = (start[:, None] + torch.arange(size, device=dev))[:, None, :].expand(b, x.shape[1], size)
        return torch.gather(x, 2, idx)
    h, w = x.shape[-2:]
    if h <= size and w <= size:
        return x
    sh, sw = min(size, h), min(size, w)
    top = torch.randint(0, h - sh + 1, (b,), generator=generator, device=generator.device).to(dev)
    left = torch.randint(0, w - sw + 1, (b,), generator=generator, device=generator.device).to(dev)
    rows = (top[:, None] + torch.arange(sh, device=dev))[:, :, None]  # (B, sh, 1)
    cols = (left[:, None] + torch.arange(sw, device=dev))[:, None, :]  # (B, 1, sw)
    return x[torch.arange(b, device=dev)[:, None, None], :, rows, cols].permute(0, 3, 1, 2).contiguous()  # (B, sh, sw, C) -> NCHW
