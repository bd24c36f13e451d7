"""Encoder-side rate-distortion optimisation: better codes for the same decoder and the same file format.

The encoder's codes are greedy: each residual stage takes the code nearest to
what is left of the encoder's output ``z_e``. They are not the codes the
*decoder* reconstructs best from, nor the ones the prior codes cheapest. As
in content-adaptive neural compression (Campos et al. 2019, "Content adaptive
optimization for neural image compression"; Yang et al. 2020, "Improving
inference for neural image compression"), the encoder can search for better
ones at encoding time, per image, with the decoder and prior fixed:

1. start from ``z_e``; for ``steps`` Adam steps, quantize ``z`` with the first
   ``quality`` residual stages, decode with the straight-through estimator
   and step ``z`` down the gradient of the pixel MSE;
2. every iterate is a candidate code map; keep the one with the lowest
   ``SSE + lambda * bits``, where ``bits`` is the prior's (teacher-forced) NLL
   of its codes and ``lambda`` is this image's own rate-distortion slope at
   ``quality``, measured from its greedy codes at the neighbouring qualities.
   Iterate 0 is the greedy code map, so the Lagrangian never gets worse.

Images go through in windows of latent cells with a margin (:func:`vqvae.codec.windows.windows`,
the loop :func:`vqvae.codec.windows.windowed` walks too), so memory stays bounded; windows are whole
prior tiles, so their bits add up. The decoder and the file format are
unchanged: a refined file is an ordinary ``.vqz`` file.
"""

from __future__ import annotations

import copy
import math

import torch
from tqdm import tqdm

from vqvae.core.windows import windows
from vqvae.image.likelihoods import reconstruct, to_input
from vqvae.quantize.codebooks import ResidualQuantizer

REL_LR = 0.015  # Adam step size as a fraction of the latents' standard deviation (scale-free across tokenizers)
DEFAULT_SLOPE = 1.0  # dB per doubling of the rate, when the model has no neighbouring quality to measure it


def sse_per_bit(slope: float, sse: float, bits: float) -> float:
    """The Lagrange multiplier ``lambda`` (SSE per bit) of a point ``(sse, bits)`` on an RD curve whose slope
    is ``slope`` dB of PSNR per doubling of the bits: ``dSSE / dbits`` there, from
    PSNR = 10 log10(peak^2 N / SSE)."""
    return slope * sse * math.log(10) / (10 * math.log(2) * max(bits, 1.0))


def quantize_prefix(quantizer, z: torch.Tensor, stages: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy codes of ``z (B, D, h, w)`` with the first ``stages`` residual stages (all codebooks of other
    quantizers) -> (indices ``(B, s, h, w)``, their quantized sum ``(B, D, h, w)``)."""
    if isinstance(quantizer, ResidualQuantizer):
        idx = quantizer.quantize(z, stages)
        return idx, quantizer.lookup(idx)
    idx = quantizer.quantize(z)
    return (idx if idx.ndim == 4 else idx[:, None]), quantizer.lookup(idx)


class Refiner:
    """Searches better codes for one codec (tokenizer + prior); see the module docstring."""

    def __init__(self, codec):
        self.codec = codec
        self.tok = codec.tokenizer
        self.rate_prior = copy.deepcopy(codec.prior).float()  # float32 is plenty to *choose* codes; coding stays float64
        self.decoder = copy.deepcopy(codec.tokenizer.decoder).requires_grad_(False)  # gradients for the latents only

    # -- pieces ------------------------------------------------------------------------------
    def bits(self, codes: torch.Tensor, quality: int) -> torch.Tensor:
        """Prior NLL in bits of code maps ``(s, h, w)`` (``h, w`` whole tiles), per code, in sequence order:
        ``(n_tiles, L)`` for the first ``quality`` stages' sequence prefix."""
        seq = self.codec.sequences(codes, quality)
        with torch.no_grad():
            return self.rate_prior.sequence_nll(seq) / math.log(2)

    def slope(self, x: torch.Tensor, z: torch.Tensor, quality: int, mask: torch.Tensor) -> tuple[float, float, float]:
        """This image's RD slope at ``quality`` from its greedy codes: (dB per doubling of bits, SSE, bits)."""
        c = self.codec
        codes, _ = quantize_prefix(self.tok.quantizer, z, c.stages)
        per_code = self.bits(codes[0], c.levels)  # (n, L): every prefix's bits are a cumulative sum
        points = {}
        for q in {max(quality - 1, 1), quality, min(quality + 1, c.levels)}:
            y = c.decode_codes(codes[:, :q] if c.prefix else codes[:, 0] if c.stages == 1 else codes)
            sse = float((((y.float() - x.float()) ** 2) * mask).sum())
            points[q] = (sse, float(per_code[:, : c.length(q)].sum()))
        lo, hi = min(points), max(points)
        if lo == hi:
            return DEFAULT_SLOPE, *points[quality]
        db = 10 * math.log10(points[lo][0] / points[hi][0])
        return max(db / math.log2(points[hi][1] / points[lo][1]), 1e-3), *points[quality]

    # -- the search --------------------------------------------------------------------------
    @torch.enable_grad()
    def refine(self, x: torch.Tensor, width: int, height: int, quality: int, steps: int,
               progress: bool = False) -> torch.Tensor:
        """Padded uint8 image ``(1, C, gh*f, gw*f)`` (real pixels ``height x width``) -> refined codes
        ``(quality, gh, gw)`` (``(stages, gh, gw)`` for non-prefix models)."""
        c, f = self.codec, self.codec.f
        gh, gw = x.shape[-2] // f, x.shape[-1] // f
        mask = torch.zeros(1, 1, *x.shape[-2:])
        mask[..., :height, :width] = 1
        with torch.no_grad():
            z = c.encode_latents(x)  # (1, D, gh, gw)
        stages = quality if c.prefix else c.stages
        slope, sse0, bits0 = self.slope(x, z, quality, mask)
        lam = sse_per_bit(slope, sse0, bits0)
        lr = REL_LR * float(z.std())
        codes = torch.zeros(stages, gh, gw, dtype=torch.long)
        xin = to_input(x)
        for w in tqdm(windows((gh, gw), c.window, c.margin), desc="refine", disable=not progress, leave=False):
            r, cc = w.core()
            codes[:, r, cc], z[..., r, cc] = self._search(w, z, x, xin, mask, lam, lr, stages, quality, steps)
            # later windows see these latents in their margin
        return codes

    def _search(self, w, z, x, xin, mask, lam: float, lr: float, stages: int, quality: int, steps: int):
        """One window's search: Adam on its latents (with context), keeping the iterate of lowest ``SSE + lam * bits``
        over the window's core. Returns the core's codes ``(stages, h, w)`` and latents ``(1, D, h, w)``."""
        f = self.codec.f
        rows, cols = w.context()
        core = w.core_in_context()
        core_lat = torch.zeros(1, 1, rows.stop - rows.start, cols.stop - cols.start)
        core_lat[..., core[0], core[1]] = 1
        px = w.context(f)
        m = mask[..., px[0], px[1]] * core_lat.repeat_interleave(f, -2).repeat_interleave(f, -1)
        xw, xinw = x[..., px[0], px[1]].float(), xin[..., px[0], px[1]]
        param = z[..., rows, cols].clone().requires_grad_(True)
        opt = torch.optim.Adam([param], lr=lr)
        best = None
        for it in range(steps + 1):
            idx, zq = quantize_prefix(self.tok.quantizer, param.detach(), stages)
            out = self.decoder(param + (zq - param).detach())
            with torch.no_grad():
                y = reconstruct(self.tok.config.likelihood, out.detach()).float()
                cost = float((((y - xw) ** 2) * m).sum()) + lam * float(self.bits(idx[0][:, core[0], core[1]], quality).sum())
            if best is None or cost < best[0]:
                best = (cost, idx[0][:, core[0], core[1]].clone(), param.detach().clone())
            if it == steps:
                break
            loss = (((out.float() - xinw) ** 2) * m).sum() / m.sum().clamp(min=1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            param.grad.mul_(core_lat)
            opt.step()
        return best[1], best[2][..., core[0], core[1]]
