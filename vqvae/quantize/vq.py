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

Both share one exact nearest-code search (:func:`vqvae.quantize.search.nearest_code`) that computes
distances in fp32 (also under autocast) in row chunks with one reused buffer,
so memory stays ``O(chunk * K)`` instead of ``O(N * K)``; optional k-means
initialisation from the first training batches; and dead-code restarts, which
re-seed codes unused for ``restart_after`` training steps from encoder outputs
of the current batch. Under torchrun the statistics go through :mod:`vqvae.core.dist`
so every rank holds the same codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.core import dist
from vqvae.quantize.search import from_flat, kmeans, nearest_code, to_flat


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



def code_counts(idx: torch.Tensor, k: int) -> torch.Tensor:
    """``(k,)`` float counts of each code in ``idx``. Unlike ``torch.bincount``, which on a GPU reads the data's maximum
    back to the host to size its output, this never waits for the device (the training step stays sync-free); the
    counts are whole numbers, exact in fp32 up to 2^24 whatever the order of the additions."""
    flat = idx.reshape(-1)
    return torch.zeros(k, device=idx.device).index_add_(0, flat, torch.ones(flat.shape[0], device=idx.device))


def perplexity_of(counts: torch.Tensor) -> torch.Tensor:
    """``exp`` of the entropy of the normalised counts."""
    p = counts / counts.sum().clamp_min(1e-12)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())



class Quantizer(nn.Module):
    """Shared machinery: search, lookup, k-means init, dead-code restarts.

    Subclasses own the codebook storage (``codebook`` property) and implement
    ``_set_codes(mask, vectors)`` and the training update in ``forward``.

    A training step never waits for the device (no ``.item()``, no data-dependent Python branch), so it can be
    captured whole in a CUDA graph: restarts are masked tensor updates, the usage counts are scatter-adds, and
    whether k-means has run is read from its buffer once per load (k-means itself is a one-off at the start).
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
        self._initialized: bool | None = None  # the buffer's value, read once (None: not read since the last load)
        self.register_load_state_dict_post_hook(_forget_initialized)

    # -- storage, provided by subclasses --------------------------------
    @property
    def codebook(self) -> torch.Tensor:  # (K, D)
        raise NotImplementedError

    def _set_codes(self, mask: torch.Tensor, vectors: torch.Tensor) -> None:
        """Codes ``k`` where ``mask[k]`` (``(K,)`` bool) become ``vectors[k]`` (``(K, D)``); the rest stay."""
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
        if not self.training:
            return
        if self._initialized is None:
            self._initialized = bool(self.initialized.item())  # once per load, not per step
        if self._initialized:
            return
        self._kmeans_buffer.append(flat.detach().float())
        if len(self._kmeans_buffer) < self.kmeans_batches:
            return
        data = dist.all_gather_cat(torch.cat(self._kmeans_buffer))
        self._kmeans_buffer = []
        centres = kmeans(data, self.codebook_size, self.kmeans_iters)
        dist.broadcast_(centres)
        self._set_codes(torch.ones(self.codebook_size, dtype=torch.bool, device=flat.device), centres.to(flat.device))
        self.initialized.fill_(1)
        self._initialized = True

    @torch.no_grad()
    def _maybe_restart(self, flat: torch.Tensor, usage: torch.Tensor) -> None:
        """Re-seed codes unused for ``restart_after`` steps from this batch's encoder outputs.

        Masked, every step: a candidate vector is drawn for every code (on the device, from its generator) and only
        the dead codes take theirs, so the step has the same operations whatever the data (no host sync)."""
        if not self.restart_after or not self.training:
            return
        self.steps_unused.add_(1).masked_fill_(usage > 0, 0)
        dead = self.steps_unused >= self.restart_after
        pick = torch.randint(flat.shape[0], (self.codebook_size,), device=flat.device)
        vectors = dist.broadcast_(flat.detach().float()[pick])  # identical restarts on every rank
        self._set_codes(dead, vectors)
        self.steps_unused.masked_fill_(dead, 0)

    def _usage(self, idx: torch.Tensor) -> torch.Tensor:
        """Code counts of this batch, summed over ranks in training (so EMA statistics and restarts
        agree everywhere); rank-local in evaluation, which needs no collectives."""
        usage = code_counts(idx, self.codebook_size)
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


class VectorQuantizer(Quantizer):
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
    def _set_codes(self, mask, vectors):
        self.embedding.copy_(torch.where(mask[:, None], vectors.to(self.embedding.dtype), self.embedding))

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


class VectorQuantizerEMA(Quantizer):
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
    def _set_codes(self, mask, vectors):
        """Set codes and reset their EMA state consistently (count 1, sum = vector)."""
        m, vectors = mask[:, None], vectors.to(self.embedding.dtype)
        self.embedding.copy_(torch.where(m, vectors, self.embedding))
        self.ema_count.masked_fill_(mask, 1.0)
        self.ema_weight.copy_(torch.where(m, vectors, self.ema_weight))

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


def _forget_initialized(module: Quantizer, _keys) -> None:
    """After ``load_state_dict`` the ``initialized`` buffer may hold another value: read it again when next needed."""
    module._initialized = None
