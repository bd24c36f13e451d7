"""Vector quantizers: the discrete bottleneck of the VQ-VAE.

Paper: van den Oord, Vinyals, Kavukcuoglu, "Neural Discrete Representation
Learning" (NeurIPS 2017), section 3 and appendix A (EMA updates).

Both quantizers take channel-first tensors as convolutions produce them,
``(B, D, H, W)`` for images or ``(B, D, T)`` for audio, and return a
:class:`QuantizerOutput` whose fields do not depend on flags.

* :class:`VectorQuantizer` learns the codebook by gradient descent on
  ``||sg[z_e] - e||^2`` and trains the encoder with ``beta ||z_e - sg[e]||^2``.
* :class:`VectorQuantizerEMA` replaces the codebook loss by exponential moving
  averages of the assigned encoder outputs (gamma = 0.99) with Laplace-smoothed
  counts; only the commitment term remains in the loss.

Both share one exact nearest-code search (:func:`nearest_code`) that computes
distances in fp32 (also under autocast) in row chunks with one reused buffer,
so memory stays ``O(chunk * K)`` instead of ``O(N * K)``; optional k-means
initialisation from the first training batches; and dead-code restarts, which
re-seed codes unused for ``restart_after`` training steps from encoder outputs
of the current batch. Under torchrun the statistics go through :mod:`vqvae.dist`
so every rank holds the same codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae import dist

# Bytes of the (chunk, K) distance buffer; 32 MiB keeps it near the caches.
_CHUNK_BYTES = 32 * 2**20


@dataclass
class QuantizerOutput:
    """What a quantizer returns.

    z_q: quantized vectors, same shape as the input; in training the
        straight-through estimator ``z_e + sg[e - z_e]`` so gradients reach z_e.
    indices: code index per position, ``(B, *spatial)`` int64.
    loss: the quantizer's loss term to add to the reconstruction loss.
    codebook_loss: ``||sg[z_e] - e||^2`` (zero for the EMA quantizer, whose
        codebook is not learned by gradients; reported for comparison).
    commitment_loss: ``||z_e - sg[e]||^2`` before multiplying by beta.
    perplexity: ``exp(H)`` of the batch's code distribution (1 .. K).
    usage: ``(K,)`` float counts of each code in this batch.
    """

    z_q: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor


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
    kernel of :mod:`vqvae.kernels.nearest_triton` does the same search in one pass.
    """
    if x.ndim != 2 or codebook.ndim != 2 or x.shape[1] != codebook.shape[1]:
        raise ValueError(f"expected x (N, D) and codebook (K, D), got {tuple(x.shape)} and {tuple(codebook.shape)}")
    if x.is_cuda and chunk_size is None:  # the fused Triton kernel: distances and argmin without writing N x K
        from vqvae.kernels import nearest_triton

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


def perplexity_of(counts: torch.Tensor) -> torch.Tensor:
    """``exp`` of the entropy of the normalised counts."""
    p = counts / counts.sum().clamp_min(1e-12)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())


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


class _Quantizer(nn.Module):
    """Shared machinery: search, lookup, k-means init, dead-code restarts.

    Subclasses own the codebook storage (``codebook`` property) and implement
    ``_set_codes(rows, vectors)`` and the training update in ``forward``.
    """

    def __init__(
        self,
        codebook_size: int,
        embedding_dim: int,
        commitment_cost: float = 0.25,
        kmeans_init: bool = False,
        kmeans_batches: int = 1,
        kmeans_iters: int = 10,
        restart_after: int = 0,
    ):
        super().__init__()
        if codebook_size < 2 or embedding_dim < 1:
            raise ValueError(f"need codebook_size >= 2 and embedding_dim >= 1, got {codebook_size}, {embedding_dim}")
        self.codebook_size = codebook_size
        self.embedding_dim = embedding_dim
        self.num_codebooks = 1
        self.commitment_cost = commitment_cost
        self.kmeans_batches = kmeans_batches if kmeans_init else 0
        self.kmeans_iters = kmeans_iters
        self.restart_after = restart_after
        # 1 once the codebook is initialised (k-means done or not requested).
        self.register_buffer("initialized", torch.tensor(0 if kmeans_init else 1, dtype=torch.uint8))
        # Training steps since each code was last chosen (for restarts).
        self.register_buffer("steps_unused", torch.zeros(codebook_size, dtype=torch.int32))
        self._kmeans_buffer: list[torch.Tensor] = []

    # -- storage, provided by subclasses --------------------------------
    @property
    def codebook(self) -> torch.Tensor:  # (K, D)
        raise NotImplementedError

    def _set_codes(self, rows: torch.Tensor, vectors: torch.Tensor) -> None:
        raise NotImplementedError

    # -- public API -------------------------------------------------------
    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Indices ``(B, *S)`` of the nearest codes for ``z (B, D, *S)``."""
        self._check(z)
        idx = nearest_code(to_flat(z.detach()), self.codebook.detach())
        return idx.reshape(z.shape[0], *z.shape[2:])

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook vectors for ``indices (B, *S)`` as ``(B, D, *S)`` (for decoding)."""
        if indices.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"indices must be an integer tensor, got {indices.dtype}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(f"indices must lie in [0, {self.codebook_size}), got [{int(indices.min())}, {int(indices.max())}]")
        return F.embedding(indices.long(), self.codebook).movedim(-1, 1)

    def _check(self, z: torch.Tensor) -> None:
        if z.ndim < 3 or z.shape[1] != self.embedding_dim:
            raise ValueError(f"expected (B, {self.embedding_dim}, ...) channel-first input, got {tuple(z.shape)}")

    # -- training-time codebook maintenance -------------------------------
    @torch.no_grad()
    def _maybe_kmeans_init(self, flat: torch.Tensor) -> None:
        if self.initialized.item() or not self.training:
            return
        self._kmeans_buffer.append(flat.detach().float())
        if len(self._kmeans_buffer) < self.kmeans_batches:
            return
        data = dist.all_gather_cat(torch.cat(self._kmeans_buffer))
        self._kmeans_buffer = []
        centres = kmeans(data, self.codebook_size, self.kmeans_iters)
        dist.broadcast_(centres)
        self._set_codes(torch.arange(self.codebook_size, device=flat.device), centres.to(flat.device))
        self.initialized.fill_(1)

    @torch.no_grad()
    def _maybe_restart(self, flat: torch.Tensor, usage: torch.Tensor) -> None:
        """Re-seed codes unused for ``restart_after`` steps from this batch's encoder outputs."""
        if not self.restart_after or not self.training:
            return
        self.steps_unused.add_(1).masked_fill_(usage > 0, 0)
        dead = (self.steps_unused >= self.restart_after).nonzero().squeeze(1)
        if dead.numel() == 0:
            return
        pick = torch.randint(flat.shape[0], (dead.numel(),), device="cpu").to(flat.device)
        vectors = flat.detach().float()[pick]
        dist.broadcast_(vectors)  # identical restarts on every rank
        self._set_codes(dead, vectors)
        self.steps_unused[dead] = 0

    def _usage(self, idx: torch.Tensor) -> torch.Tensor:
        """Code counts of this batch, summed over ranks in training (so EMA statistics and restarts
        agree everywhere); rank-local in evaluation, which needs no collectives."""
        usage = torch.bincount(idx, minlength=self.codebook_size).float()
        return dist.all_reduce_sum(usage) if self.training else usage

    def _finish(self, z: torch.Tensor, q: torch.Tensor, idx: torch.Tensor, usage: torch.Tensor, learned: bool) -> QuantizerOutput:
        """Assemble the output from the flat chosen codes ``q (N, D)``.

        ``learned``: the codebook gets the gradient of the codebook loss
        (plain VQ); otherwise that term is only reported (EMA).
        """
        z_q = from_flat(q, z)
        zf = z.float()
        commitment = F.mse_loss(zf, z_q.detach())
        codebook_loss = F.mse_loss(z_q, zf.detach())
        loss = self.commitment_cost * commitment + (codebook_loss if learned else 0.0)
        return QuantizerOutput(
            z_q=z + (z_q.to(z.dtype) - z).detach(),
            indices=idx.reshape(z.shape[0], *z.shape[2:]),
            loss=loss,
            codebook_loss=codebook_loss if learned else codebook_loss.detach(),
            commitment_loss=commitment,
            perplexity=perplexity_of(usage),
            usage=usage,
        )

    def extra_repr(self) -> str:
        return f"K={self.codebook_size}, D={self.embedding_dim}, beta={self.commitment_cost}"


class VectorQuantizer(_Quantizer):
    """The paper's quantizer: codebook learned by gradients (eq. 3).

    loss = ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2, beta = 0.25 by default.
    The codebook is initialised uniformly in ``[-1/K, 1/K]`` as in Sonnet.
    """

    def __init__(self, codebook_size: int, embedding_dim: int, commitment_cost: float = 0.25, **kw):
        super().__init__(codebook_size, embedding_dim, commitment_cost, **kw)
        self.embedding = nn.Parameter(torch.empty(codebook_size, embedding_dim).uniform_(-1 / codebook_size, 1 / codebook_size))

    @property
    def codebook(self) -> torch.Tensor:
        return self.embedding

    @torch.no_grad()
    def _set_codes(self, rows, vectors):
        self.embedding[rows] = vectors.to(self.embedding.dtype)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        self._check(z)
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = to_flat(z).float()
            self._maybe_kmeans_init(flat)
            idx = nearest_code(flat.detach(), self.embedding.detach())
            usage = self._usage(idx)
            out = self._finish(z, F.embedding(idx, self.embedding), idx, usage, learned=True)
            self._maybe_restart(flat, usage)
            return out


class VectorQuantizerEMA(_Quantizer):
    """Quantizer whose codebook is an exponential moving average (appendix A.1).

    For each code k with assigned encoder outputs in the batch:
    ``N_k <- gamma N_k + (1 - gamma) n_k``, ``m_k <- gamma m_k + (1 - gamma) sum z``,
    ``e_k = m_k / N~_k`` with Laplace-smoothed counts
    ``N~_k = (N_k + eps) / (sum N + K eps) * sum N`` so rare codes never divide
    by zero. Counts and sums are all-reduced across ranks before the update.
    Only ``beta * commitment`` enters the loss.
    """

    def __init__(self, codebook_size: int, embedding_dim: int, commitment_cost: float = 0.25, decay: float = 0.99, epsilon: float = 1e-5, **kw):
        super().__init__(codebook_size, embedding_dim, commitment_cost, **kw)
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.epsilon = epsilon
        init = torch.randn(codebook_size, embedding_dim)
        self.register_buffer("embedding", init.clone())
        self.register_buffer("ema_count", torch.ones(codebook_size))
        self.register_buffer("ema_weight", init.clone())

    @property
    def codebook(self) -> torch.Tensor:
        return self.embedding

    @torch.no_grad()
    def _set_codes(self, rows, vectors):
        """Set codes and reset their EMA state consistently (count 1, sum = vector)."""
        vectors = vectors.to(self.embedding.dtype)
        self.embedding[rows] = vectors
        self.ema_count[rows] = 1.0
        self.ema_weight[rows] = vectors

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor, usage: torch.Tensor) -> None:
        sums = dist.all_reduce_sum(torch.zeros_like(self.ema_weight).index_add_(0, idx, flat))
        self.ema_count.mul_(self.decay).add_(usage, alpha=1 - self.decay)
        self.ema_weight.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.epsilon) / (n + self.codebook_size * self.epsilon) * n
        self.embedding.copy_(self.ema_weight / smoothed[:, None])

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        self._check(z)
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = to_flat(z).float()
            self._maybe_kmeans_init(flat)
            idx = nearest_code(flat.detach(), self.embedding)
            usage = self._usage(idx)
            # Codes from the codebook before this step's update, as in Sonnet.
            out = self._finish(z, F.embedding(idx, self.embedding).clone(), idx, usage, learned=False)
            if self.training:
                self._ema_update(flat.detach(), idx, usage)
                self._maybe_restart(flat, usage)
            return out


QUANTIZERS = {"vq": VectorQuantizer, "ema": VectorQuantizerEMA}


LAYOUTS = ("grouped", "residual")


def make_quantizer(kind: str, codebook_size: int, embedding_dim: int, num_codebooks: int = 1, layout: str = "grouped",
                   quantizer_dropout: float = 0.0, **kw) -> nn.Module:
    """One quantizer of ``kind`` (``vq`` or ``ema``); with ``num_codebooks`` > 1 a :class:`~vqvae.codebooks.GroupedQuantizer`
    (``layout="grouped"``: one codebook per D-slice) or a :class:`~vqvae.codebooks.ResidualQuantizer`
    (``layout="residual"``: stages on the residual, with SoundStream's ``quantizer_dropout``)."""
    cls = QUANTIZERS[kind]
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if num_codebooks == 1:
        return cls(codebook_size, embedding_dim, **kw)
    from vqvae.codebooks import GroupedQuantizer, ResidualQuantizer

    if layout == "residual":
        return ResidualQuantizer(num_codebooks, lambda: cls(codebook_size, embedding_dim, **kw), quantizer_dropout)
    return GroupedQuantizer(num_codebooks, lambda: cls(codebook_size, embedding_dim, **kw))
