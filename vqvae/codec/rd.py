"""Rate-distortion evaluation: Bjøntegaard delta rate, and the Pillow JPEG / WebP baselines.

BD-rate (Bjøntegaard, VCEG-M33, 2001): fit ``log(rate)`` as a cubic polynomial
of PSNR for each codec, integrate both over the PSNR interval they share, and
report ``exp(mean difference) - 1``: the average change in bits needed for the
same quality (negative: the test codec saves bits). Only the shared PSNR range
counts; outside it the curves are not compared.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def bd_rate(ref_rate, ref_psnr, test_rate, test_psnr) -> float:
    """Bjøntegaard delta rate of ``test`` against ``ref`` in percent (4+ points each; rates > 0).
    ``nan`` if the PSNR ranges do not overlap."""
    r1, p1, r2, p2 = (np.asarray(v, dtype=np.float64) for v in (ref_rate, ref_psnr, test_rate, test_psnr))
    if min(len(r1), len(r2)) < 4 or np.any(r1 <= 0) or np.any(r2 <= 0):
        raise ValueError("bd_rate needs at least 4 points per curve and positive rates")
    lo, hi = max(p1.min(), p2.min()), min(p1.max(), p2.max())
    if lo >= hi:
        return float("nan")
    f1, f2 = np.polyfit(p1, np.log(r1), 3), np.polyfit(p2, np.log(r2), 3)
    i1, i2 = np.polyint(f1), np.polyint(f2)
    avg = ((np.polyval(i2, hi) - np.polyval(i2, lo)) - (np.polyval(i1, hi) - np.polyval(i1, lo))) / (hi - lo)
    return float((np.exp(avg) - 1) * 100)


def pillow_codec(image: torch.Tensor, fmt: str, quality: int) -> tuple[int, torch.Tensor]:
    """Encode uint8 ``(C, H, W)`` with Pillow's ``JPEG`` or ``WEBP`` at ``quality``: ``(bytes, decoded image)``.
    JPEG uses optimised Huffman tables and 4:2:0 chroma (Pillow's default subsampling)."""
    a = image.numpy()
    im = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
    buf = io.BytesIO()
    kw = {"optimize": True} if fmt == "JPEG" else {"method": 6}
    im.save(buf, format=fmt, quality=quality, **kw)
    data = buf.getvalue()
    out = np.asarray(Image.open(io.BytesIO(data)).convert(im.mode))
    out = out[None] if out.ndim == 2 else out.transpose(2, 0, 1)
    return len(data), torch.from_numpy(np.ascontiguousarray(out))
