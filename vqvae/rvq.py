"""Residual vector quantization: ``S`` codebooks in sequence, each quantizing what the previous left.

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

Indices come back ``(B, S, *spatial)`` like :class:`~vqvae.quantizers.GroupedQuantizer`'s,
so tokenizers, code caches and priors treat the stage axis as the codebook axis;
:meth:`ResidualQuantizer.lookup` also accepts the first ``s <= S`` stages.
"""

from __future__ import annotations

import torch
from torch import nn

from vqvae.quantizers import QuantizerOutput


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
            n = torch.randint(1, s + 1, (b,), device="cpu")
            drop = torch.rand(b) < self.quantizer_dropout
            n = torch.where(drop, n, torch.full_like(n, s)).to(z.device)
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
    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, D, *S)`` -> indices ``(B, S, *spatial)``, stage by stage on the residual."""
        self._check(z)
        residual, out = z.float(), []
        for stage in self.stages:
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
