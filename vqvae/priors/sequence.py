"""What the autoregressive priors over codes share: sequence order, outputs, loss, sampling filters.

Paper: van den Oord et al. 2017, section 3.2: after the VQ-VAE is trained with
a uniform prior, an autoregressive prior p(z) is fit over its discrete codes
and used for ancestral sampling and for the likelihood bound.

A tokenizer's code map is ``(B, H, W)`` (one codebook) or ``(B, G, H, W)``
(``G`` codebooks per latent position, as the paper's CIFAR-10 latents
8 x 8 x 10). Priors model the codes as one sequence in **raster order, codebook
fastest**: flat index ``l = (i * W + j) * G + g``, length ``L = H * W * G``;
or, with ``order="codebook"``, **codebook slowest**: ``l = (g * H + i) * W + j``,
codebook 0's whole map first. The second is what residual (coarse-to-fine)
codes want: the first ``s * H * W`` codes are exactly the first ``s`` stages,
so one prior codes every quality level of the codec as a prefix.
:func:`to_sequence` / :func:`from_sequence` convert, so every prior, the
codec and the evaluation agree on the order.

Both priors (:mod:`vqvae.priors.pixelcnn`, :mod:`vqvae.priors.transformer`)
take their whole config (a :class:`PriorConfig` subclass), implement
``forward(codes, labels) -> PriorOutput`` and ``sample(n, labels, ...)``, and
use :func:`prior_loss` and :func:`filter_logits` from here, so the maths lives
in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vqvae.core.errors import require


ORDERS = ("raster", "codebook")


@dataclass
class PriorConfig:
    """Fields every prior has. ``codebook_size``, ``num_codebooks``, ``height`` and
    ``width`` come from the tokenizer; ``num_classes`` > 0 makes the prior class-conditional."""

    codebook_size: int = 512  # K
    num_codebooks: int = 1  # G codes per latent position
    height: int = 0  # H of the code map (0: filled in from the tokenizer)
    width: int = 0  # W of the code map
    num_classes: int = 0  # 0: unconditional
    dropout: float = 0.0
    order: str = "raster"  # "raster": codebook fastest; "codebook": codebook slowest (each codebook's map in turn)

    @property
    def seq_len(self) -> int:
        return self.height * self.width * self.num_codebooks

    @property
    def code_shape(self) -> tuple[int, ...]:
        """Shape of one code map as the tokenizer produces it."""
        if self.num_codebooks == 1:
            return (self.height, self.width)
        return (self.num_codebooks, self.height, self.width)

    def validate(self) -> None:
        checks = [
            (2 <= self.codebook_size <= 2**20, "model.codebook_size must be in 2..1048576"),
            (self.num_codebooks >= 1, "model.num_codebooks must be >= 1"),
            (self.height >= 1 and self.width >= 1, "model.height and model.width must be >= 1 (set from the tokenizer)"),
            (self.num_classes >= 0, "model.num_classes must be >= 0"),
            (0.0 <= self.dropout < 1.0, "model.dropout must be in [0, 1)"),
            (self.order in ORDERS, f"model.order must be one of {ORDERS}"),
        ]
        require(checks)


@dataclass
class PriorOutput:
    """Named outputs of a prior's ``forward``.

    logits: ``(B, L, K)`` next-code logits in sequence order (:func:`to_sequence`):
        ``logits[:, l]`` is the distribution of code ``l`` given codes ``< l``.
    loss: mean negative log-likelihood in nats per code (the training loss).
    nll_bits: ``(B,)`` ``-log2 p(z)`` of each code map in bits.
    """

    logits: torch.Tensor
    loss: torch.Tensor
    nll_bits: torch.Tensor


def to_sequence(codes: torch.Tensor, cfg: PriorConfig, values: bool = True) -> torch.Tensor:
    """Code maps ``(B, H, W)`` or ``(B, G, H, W)`` -> ``(B, L)`` int64 in the config's order.

    ``values``: also check every code lies in ``[0, K)``, which reads the data's range back to the host; a training
    step passes False (its data were checked once, when the task prepared them) so it never waits for the device."""
    if tuple(codes.shape[1:]) != cfg.code_shape:
        raise ValueError(f"expected code maps (B, {', '.join(map(str, cfg.code_shape))}), got {tuple(codes.shape)}")
    if codes.dtype.is_floating_point:
        raise ValueError(f"codes must be integers, got {codes.dtype}")
    if values and codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= cfg.codebook_size):
        raise ValueError(f"codes must lie in [0, {cfg.codebook_size}), got [{int(codes.min())}, {int(codes.max())}]")
    b = codes.shape[0]
    c = codes.long().reshape(b, cfg.num_codebooks, cfg.height, cfg.width)
    if cfg.order == "codebook":
        return c.reshape(b, cfg.seq_len)
    return c.permute(0, 2, 3, 1).reshape(b, cfg.seq_len)


def from_sequence(seq: torch.Tensor, cfg: PriorConfig) -> torch.Tensor:
    """Inverse of :func:`to_sequence`: ``(B, L)`` -> the tokenizer's code-map shape."""
    b = seq.shape[0]
    if cfg.order == "codebook":
        return seq.reshape(b, *cfg.code_shape).contiguous()
    c = seq.reshape(b, cfg.height, cfg.width, cfg.num_codebooks).permute(0, 3, 1, 2)
    return c.reshape(b, *cfg.code_shape).contiguous()


def positions(cfg: PriorConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(row, col, codebook)`` int64 ``(L,)`` of each sequence position in the config's order."""
    ll = torch.arange(cfg.seq_len)
    hw, g = cfg.height * cfg.width, cfg.num_codebooks
    if cfg.order == "codebook":
        return (ll % hw) // cfg.width, ll % cfg.width, ll // hw
    return ll // (cfg.width * g), (ll // g) % cfg.width, ll % g


def check_labels(labels: torch.Tensor | None, n: int, cfg: PriorConfig, device, values: bool = True) -> torch.Tensor | None:
    """Validate class labels for a (conditional) prior; ``None`` for unconditional priors (``values``: as in
    :func:`to_sequence`)."""
    if cfg.num_classes == 0:
        if labels is not None:
            raise ValueError("this prior is unconditional: train it with --conditional to use labels")
        return None
    if labels is None:
        raise ValueError(f"this prior is class-conditional: labels in [0, {cfg.num_classes}) are required")
    labels = torch.as_tensor(labels, device=device).long().reshape(-1)
    if labels.numel() == 1 and n > 1:
        labels = labels.expand(n)
    if labels.shape[0] != n:
        raise ValueError(f"expected {n} labels, got {labels.shape[0]}")
    if values and (int(labels.min()) < 0 or int(labels.max()) >= cfg.num_classes):
        raise ValueError(f"labels must lie in [0, {cfg.num_classes}), got [{int(labels.min())}, {int(labels.max())}]")
    return labels


def sample_setup(n: int, labels, cfg: PriorConfig, device, temperature: float, top_k: int, top_p: float):
    """Validate a ``sample`` call before any work: ``(labels or None, filter kwargs)``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    filters = dict(temperature=temperature, top_k=top_k, top_p=top_p)
    filter_logits(torch.zeros(1, 2), **filters)  # raises on bad filter values
    return check_labels(labels, n, cfg, device), filters


def guide(logits: torch.Tensor, n: int, guidance: float) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022) of a batch whose first ``n`` rows are conditional and the next
    ``n`` unconditional: ``u + guidance (c - u)``, ``(n, K)``. 1 is the conditional model; larger follows the condition
    more closely, at some cost in diversity."""
    cond, unc = logits[:n], logits[n : 2 * n]
    return unc + guidance * (cond - unc)


def prior_loss(logits: torch.Tensor, seq: torch.Tensor) -> PriorOutput:
    """Cross-entropy of ``logits (B, L, K)`` against ``seq (B, L)`` (computed in fp32)."""
    nll = F.cross_entropy(logits.float().transpose(1, 2), seq, reduction="none")  # (B, L) nats
    return PriorOutput(logits=logits, loss=nll.mean(), nll_bits=nll.sum(1) / math.log(2))


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Temperature, top-k and nucleus (top-p) filtering of ``logits (..., K)`` for sampling.

    Removed entries become ``-inf``; the most likely code always survives.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k < 0 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"need top_k >= 0 and top_p in (0, 1], got {top_k}, {top_p}")
    logits = logits.float() / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > top_p  # keep the smallest prefix whose mass reaches top_p
        drop[..., 0] = False
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
    return logits


def sample_from(logits: torch.Tensor, generator: torch.Generator | None = None, **filters) -> torch.Tensor:
    """One draw per row of ``logits (..., K)`` after :func:`filter_logits`; returns int64 ``(...)``."""
    probs = filter_logits(logits, **filters).softmax(-1)
    flat = probs.reshape(-1, probs.shape[-1])
    if generator is not None and generator.device != flat.device:
        idx = torch.multinomial(flat.cpu(), 1, generator=generator).to(flat.device)
    else:
        idx = torch.multinomial(flat, 1, generator=generator)
    return idx.reshape(probs.shape[:-1])
