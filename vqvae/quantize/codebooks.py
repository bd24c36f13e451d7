"""Several codebooks per latent position: grouped (one per D-slice) and residual (stages in sequence).

:class:`GroupedQuantizer` splits each latent vector into ``G`` slices with a
codebook each (the paper's CIFAR-10 latents). :class:`ResidualQuantizer`
quantizes the whole vector with ``S`` codebooks in sequence, each on what the
previous left, described below. Both return indices ``(B, G or S, *spatial)``
so tokenizers, code caches and priors treat them alike.

Residual vector quantization.

Residual VQ (Juang & Gray 1982; SoundStream, Zeghidour et al. 2021, section 3.2)
approximates ``z`` by ``e_1 + e_2 + ... + e_S`` where stage ``s`` quantizes the
residual ``r_s = z - (e_1 + ... + e_{s-1})`` against its own K x D codebook.
Decoding any prefix of the stages gives a coarser reconstruction, so one model
has ``S`` rates: the learned codec uses the stage count as its quality level.

*Quantizer dropout* (SoundStream): in training each sample keeps only its
first ``n ~ U{1..S}`` stages (with probability ``quantizer_dropout``) in the
vector sent to the decoder, so the decoder learns every prefix. Every stage
still sees every sample (its codebook and commitment terms and EMA updates
are computed on all of them), so later codebooks keep learning.

Gradients: the decoder input is the straight-through ``z + sg[sum_s m_s e_s - z]``
(identity to the encoder, once, whatever the stage count); stage ``s``'s
commitment term ``beta ||r_s - sg[e_s]||^2`` reaches the encoder through
``r_s = z - sg[e_1 + ... + e_{s-1}]``. The loss is the **sum** of the stages'
terms, as in SoundStream.

Indices come back ``(B, S, *spatial)`` like :class:`GroupedQuantizer`'s,
so tokenizers, code caches and priors treat the stage axis as the codebook axis;
:meth:`ResidualQuantizer.lookup` also accepts the first ``s <= S`` stages.
"""

from __future__ import annotations

import torch
from torch import nn

from vqvae.quantize.vq import QuantizerOutput


class GroupedQuantizer(nn.Module):
    """``G`` codebooks per latent position (the paper's CIFAR-10 latents, 8 x 8 x 10).

    The encoder emits ``G * D`` channels; slot ``g`` (channels ``g*D .. (g+1)*D``)
    is quantized against its own K x D codebook, as the paper's authors describe
    (sonnet#131, nadavbh12/VQ-VAE#8). Indices come back ``(B, G, *S)``; ``usage``
    is ``(G * K,)`` (slot g's counts at ``g*K .. (g+1)*K``); the loss terms are
    the mean over slots (so beta keeps its meaning) and ``perplexity`` the mean
    of the slots' perplexities.
    """

    def __init__(self, num_codebooks: int, make):
        super().__init__()
        if num_codebooks < 2:
            raise ValueError(f"GroupedQuantizer needs >= 2 codebooks, got {num_codebooks}")
        self.groups = nn.ModuleList(make() for _ in range(num_codebooks))
        self.num_codebooks = num_codebooks
        self.codebook_size = self.groups[0].codebook_size
        self.embedding_dim = self.groups[0].embedding_dim

    def _split(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if z.ndim < 3 or z.shape[1] != self.num_codebooks * self.embedding_dim:
            raise ValueError(f"expected (B, {self.num_codebooks * self.embedding_dim}, ...) = G*D channels, got {tuple(z.shape)}")
        return z.split(self.embedding_dim, dim=1)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        outs = [q(part) for q, part in zip(self.groups, self._split(z))]
        mean = lambda name: torch.stack([getattr(o, name) for o in outs]).mean()  # noqa: E731
        return QuantizerOutput(
            z_q=torch.cat([o.z_q for o in outs], 1),
            indices=torch.stack([o.indices for o in outs], 1),
            loss=mean("loss"),
            codebook_loss=mean("codebook_loss"),
            commitment_loss=mean("commitment_loss"),
            perplexity=mean("perplexity"),
            usage=torch.cat([o.usage for o in outs]),
        )

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, G*D, *S)`` -> indices ``(B, G, *S)``."""
        return torch.stack([q.quantize(part) for q, part in zip(self.groups, self._split(z))], 1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices ``(B, G, *S)`` -> ``(B, G*D, *S)``."""
        if indices.ndim < 2 or indices.shape[1] != self.num_codebooks:
            raise ValueError(f"expected indices (B, {self.num_codebooks}, ...), got {tuple(indices.shape)}")
        return torch.cat([q.lookup(indices[:, g]) for g, q in enumerate(self.groups)], 1)


class ResidualQuantizer(nn.Module):
    def __init__(self, num_stages: int, make, quantizer_dropout: float = 0.0):
        super().__init__()
        if num_stages < 2:
            raise ValueError(f"ResidualQuantizer needs >= 2 stages, got {num_stages}")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout must be in [0, 1], got {quantizer_dropout}")
        self.stages = nn.ModuleList(make() for _ in range(num_stages))
        self.num_codebooks = num_stages
        self.quantizer_dropout = quantizer_dropout
        self.codebook_size = self.stages[0].codebook_size
        self.embedding_dim = self.stages[0].embedding_dim

    def _check(self, z: torch.Tensor) -> None:
        if z.ndim < 3 or z.shape[1] != self.embedding_dim:
            raise ValueError(f"expected (B, {self.embedding_dim}, ...) channel-first input, got {tuple(z.shape)}")

    def _keep(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, S)`` 0/1 float: which stages reach the decoder for each sample."""
        b, s = z.shape[0], self.num_codebooks
        keep = torch.ones(b, s, device=z.device)
        if self.training and self.quantizer_dropout > 0:
            n = torch.randint(1, s + 1, (b,), device=z.device)  # the device's generator: no host round trip
            drop = torch.rand(b, device=z.device) < self.quantizer_dropout
            n = torch.where(drop, n, torch.full_like(n, s))
            keep = (torch.arange(s, device=z.device)[None] < n[:, None]).float()
        return keep

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        self._check(z)
        keep = self._keep(z).view(z.shape[0], self.num_codebooks, *([1] * (z.ndim - 2)))
        residual, total, outs = z, torch.zeros_like(z, dtype=torch.float32), []
        for s, stage in enumerate(self.stages):
            o = stage(residual)
            e = o.z_q.detach().float()  # the chosen codes' values (the straight-through output's value)
            total = total + keep[:, s : s + 1] * e
            residual = residual - e.to(residual.dtype)
            outs.append(o)
        stack = lambda name: torch.stack([getattr(o, name) for o in outs])  # noqa: E731
        return QuantizerOutput(
            z_q=z + (total.to(z.dtype) - z).detach(),
            indices=torch.stack([o.indices for o in outs], 1),
            loss=stack("loss").sum(),
            codebook_loss=stack("codebook_loss").sum(),
            commitment_loss=stack("commitment_loss").sum(),
            perplexity=stack("perplexity").mean(),
            usage=torch.cat([o.usage for o in outs]),
        )

    @torch.no_grad()
    def quantize(self, z: torch.Tensor, stages: int | None = None) -> torch.Tensor:
        """``(B, D, *S)`` -> indices ``(B, s, *spatial)`` of the first ``s = stages`` (default all) stages,
        stage by stage on the residual: the greedy codes, whose prefixes are the coarser ones."""
        self._check(z)
        residual, out = z.float(), []
        for stage in self.stages[:stages]:
            idx = stage.quantize(residual)
            residual = residual - stage.lookup(idx)
            out.append(idx)
        return torch.stack(out, 1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices ``(B, s, *spatial)`` of the first ``s <= S`` stages -> their sum ``(B, D, *spatial)``."""
        if indices.ndim < 2 or not 1 <= indices.shape[1] <= self.num_codebooks:
            raise ValueError(f"expected indices (B, s, ...) with 1 <= s <= {self.num_codebooks} stages, got {tuple(indices.shape)}")
        return sum(self.stages[s].lookup(indices[:, s]) for s in range(indices.shape[1]))

    def extra_repr(self) -> str:
        return f"stages={self.num_codebooks}, quantizer_dropout={self.quantizer_dropout}"
