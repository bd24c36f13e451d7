"""The dVAE's bottleneck: a Gumbel-softmax relaxation of a categorical over K codes (DALL-E, Ramesh et al. 2021).

The encoder emits logits ``(B, K, h, w)``; the posterior ``q(z | x)`` at each
position is their softmax. In training a relaxed sample ``y = softmax((logits +
g) / tau)`` (``g`` Gumbel noise; Jang et al. 2017, Maddison et al. 2017) mixes
the codebook, ``z = sum_k y_k e_k`` (the codebook ``e`` is the decoder's first
1x1 convolution in DALL-E's terms); in evaluation the code is the argmax and
``z = e_argmax``. The loss term is ``beta * KL(q || uniform) * kl_scale`` with
the KL averaged over positions in nats; the dVAE sets ``kl_scale = 1 / (f^2 C)``
(latent positions per sub-pixel) so that, against a reconstruction loss
averaged per sub-pixel, ``beta`` means what DALL-E's does (6.6 there) with
both terms summed over the image.

Schedules (DALL-E, section 2.1 and appendix A.2), driven by a step counter
kept in the module (so they resume with the checkpoint): the temperature
anneals from ``tau_start`` (1) to ``tau_end`` (1/16) and the KL weight ramps
from 0 to ``kl_weight``, each along a half-cosine over its number of steps.

Outputs use :class:`~vqvae.quantize.vq.QuantizerOutput` (``codebook_loss`` holds
the KL, ``commitment_loss`` is 0), so the tokenizer contract, the evaluation
and the priors treat a dVAE like a VQ-VAE.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.quantize.vq import QuantizerOutput, code_counts, perplexity_of


def cosine(step, steps: int, start: float, end: float):
    """Half-cosine from ``start`` (step 0) to ``end`` (step >= ``steps``); ``end`` at once if ``steps`` is 0.

    ``step`` an int gives a float; a 0-d tensor (the module's step counter) gives a 0-d fp32 tensor on its device,
    so the training step never reads the counter back to the host."""
    if torch.is_tensor(step):
        frac = (step.float() / steps).clamp(max=1.0) if steps > 0 else torch.ones((), device=step.device)
        return end + (start - end) * 0.5 * (1 + torch.cos(math.pi * frac))
    if steps <= 0 or step >= steps:
        return end
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * step / steps))


class GumbelQuantizer(nn.Module):
    def __init__(self, codebook_size: int, embedding_dim: int, tau_start: float = 1.0, tau_end: float = 1 / 16,
                 tau_steps: int = 0, kl_weight: float = 0.0, kl_steps: int = 0, kl_scale: float = 1.0):
        super().__init__()
        if codebook_size < 2 or embedding_dim < 1 or not 0 < tau_end <= tau_start or kl_weight < 0:
            raise ValueError("need codebook_size >= 2, embedding_dim >= 1, 0 < tau_end <= tau_start and kl_weight >= 0")
        self.codebook_size, self.embedding_dim, self.num_codebooks = codebook_size, embedding_dim, 1
        self.tau_start, self.tau_end, self.tau_steps = tau_start, tau_end, tau_steps
        self.kl_weight, self.kl_steps, self.kl_scale = kl_weight, kl_steps, kl_scale
        self.embedding = nn.Parameter(torch.randn(codebook_size, embedding_dim) / math.sqrt(codebook_size))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    @property
    def tau(self) -> torch.Tensor:
        """The temperature at the current step, a 0-d tensor on the module's device."""
        return cosine(self.step, self.tau_steps, self.tau_start, self.tau_end)

    @property
    def beta(self) -> torch.Tensor:
        """The KL weight at the current step, a 0-d tensor on the module's device."""
        return cosine(self.step, self.kl_steps, 0.0, self.kl_weight)

    def _check(self, logits: torch.Tensor) -> None:
        if logits.ndim < 3 or logits.shape[1] != self.codebook_size:
            raise ValueError(f"expected logits (B, {self.codebook_size}, ...), got {tuple(logits.shape)}")

    def forward(self, logits: torch.Tensor) -> QuantizerOutput:
        self._check(logits)
        lf = logits.float()
        idx = lf.argmax(1)
        if self.training:
            y = F.gumbel_softmax(lf, tau=self.tau, hard=False, dim=1)
            z = torch.einsum("bk...,kd->bd...", y, self.embedding)
            beta = self.beta
            self.step += 1
        else:
            z, beta = self.lookup(idx), self.beta
        logq = lf.log_softmax(1)
        kl = (logq.exp() * (logq + math.log(self.codebook_size))).sum(1).mean()  # KL(q || uniform) in nats per position
        usage = code_counts(idx, self.codebook_size)
        zero = kl.new_zeros(())
        return QuantizerOutput(z_q=z.to(logits.dtype), indices=idx, loss=beta * self.kl_scale * kl, codebook_loss=kl, commitment_loss=zero,
                               perplexity=perplexity_of(usage), usage=usage)

    @torch.no_grad()
    def quantize(self, logits: torch.Tensor) -> torch.Tensor:
        """The posterior's mode: ``argmax`` codes ``(B, *spatial)``."""
        self._check(logits)
        return logits.argmax(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(f"indices must lie in [0, {self.codebook_size}), got [{int(indices.min())}, {int(indices.max())}]")
        return F.embedding(indices.long(), self.embedding).movedim(-1, 1)

    def extra_repr(self) -> str:
        return (f"K={self.codebook_size}, D={self.embedding_dim}, tau {self.tau_start}->{self.tau_end} over {self.tau_steps}, "
                f"KL weight 0->{self.kl_weight} over {self.kl_steps}")
