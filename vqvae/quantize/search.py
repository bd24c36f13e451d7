"""Exact nearest-code search and k-means: the maths every quantizer shares.

:func:`nearest_code` computes ``argmin_k ||x - e_k||^2`` in fp32 (also under
autocast) in row chunks with one reused buffer, so memory stays
``O(chunk * K)`` and the ``N x K`` distance matrix is never built; on CUDA with
Triton it runs as one fused kernel (:mod:`vqvae.quantize.nearest_triton`).
:func:`kmeans` (Lloyd's, k-means++ seeding) initialises codebooks from data.
"""

from __future__ import annotations

import torch

# Bytes of the (chunk, K) distance buffer; 32 MiB keeps it near the caches.
_CHUNK_BYTES = 32 * 2**20


@torch.no_grad()
def nearest_code(x: torch.Tensor, codebook: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """Index of the nearest codebook row for each row of ``x``.

    x: ``(N, D)``; codebook: ``(K, D)``; returns ``(N,)`` int64.

    ``argmin_k ||x - e_k||^2 = argmin_k (||e_k||^2 - 2 x . e_k)``: the row norm
    of x is constant per row and dropped. Computed in fp32 whatever the input
    dtype or autocast state, ``chunk_size`` rows at a time into one reused
    ``(chunk, K)`` buffer, so the full ``N x K`` matrix is never allocated.
    Exact up to fp32 rounding: only near-ties can differ from a float64 oracle.
    On CUDA with Triton installed (and ``VQVAE_TRITON`` not ``0``), the fused
    kernel of :mod:`vqvae.quantize.nearest_triton` does the same search in one pass.
    """
    if x.ndim != 2 or codebook.ndim != 2 or x.shape[1] != codebook.shape[1]:
        raise ValueError(f"expected x (N, D) and codebook (K, D), got {tuple(x.shape)} and {tuple(codebook.shape)}")
    if x.is_cuda and chunk_size is None:  # the fused Triton kernel: distances and argmin without writing N x K
        from vqvae.quantize import nearest_triton  # imports Triton: only for CUDA tensors

        if nearest_triton.supported(x, codebook):
            return nearest_triton.nearest_code_triton(x, codebook)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        e = codebook.float()
        n, k = x.shape[0], e.shape[0]
        if chunk_size is None:
            chunk_size = max(1, min(n, _CHUNK_BYTES // (4 * k)))
        e_sq = (e * e).sum(1)
        e_t = e.t()
        out = torch.empty(n, dtype=torch.long, device=x.device)
        buf = torch.empty(min(chunk_size, n), k, dtype=torch.float32, device=x.device)
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            d = buf[: stop - start]
            torch.addmm(e_sq, x[start:stop], e_t, beta=1.0, alpha=-2.0, out=d)
            torch.argmin(d, dim=1, out=out[start:stop])
    return out


def to_flat(z: torch.Tensor) -> torch.Tensor:
    """``(B, D, *S)`` -> ``(B * prod(S), D)``, channel last."""
    return z.movedim(1, -1).reshape(-1, z.shape[1])


def from_flat(flat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_flat` for a tensor shaped like ``like``."""
    b, d, *s = like.shape
    return flat.reshape(b, *s, d).movedim(-1, 1)



@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, iters: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
    """Lloyd's k-means on ``x (N, D)`` with k-means++ seeding; returns ``(k, D)``.

    Uses :func:`nearest_code` for assignments. Empty clusters keep their
    previous centre. If ``N < k`` the points are reused with small noise.
    """
    x = x.float()
    n = x.shape[0]
    if n < k:
        reps = -(-k // n)
        x = x.repeat(reps, 1)
        x = x + 1e-3 * x.std() * torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
        n = x.shape[0]
    centres = _kmeans_pp(x, k, generator)
    for _ in range(iters):
        idx = nearest_code(x, centres)
        sums = torch.zeros_like(centres).index_add_(0, idx, x)
        counts = torch.bincount(idx, minlength=k).to(x.dtype)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


@torch.no_grad()
def _kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each new centre is drawn
    with probability proportional to its squared distance to the nearest chosen one."""
    n = x.shape[0]
    idx = torch.empty(k, dtype=torch.long)
    idx[0] = torch.randint(n, (1,), generator=generator)
    d2 = ((x - x[idx[0]]) ** 2).sum(1)
    for i in range(1, k):
        w = d2.clamp_min(0).cpu().double()
        j = torch.multinomial(w, 1, generator=generator) if w.sum() > 0 else torch.randint(n, (1,), generator=generator)
        idx[i] = j
        d2 = torch.minimum(d2, ((x - x[j.to(x.device)]) ** 2).sum(1))
    return x[idx.to(x.device)].clone()
