"""The quantizer a tokenizer config asks for: one codebook, or several (grouped or residual)."""

from __future__ import annotations

from torch import nn

from vqvae.quantize.codebooks import GroupedQuantizer, ResidualQuantizer
from vqvae.quantize.vq import QUANTIZERS

LAYOUTS = ("grouped", "residual")


def make_quantizer(kind: str, codebook_size: int, embedding_dim: int, num_codebooks: int = 1, layout: str = "grouped",
                   quantizer_dropout: float = 0.0, **kw) -> nn.Module:
    """One quantizer of ``kind`` (``vq`` or ``ema``); with ``num_codebooks`` > 1 a :class:`~vqvae.quantize.codebooks.GroupedQuantizer`
    (``layout="grouped"``: one codebook per D-slice) or a :class:`~vqvae.quantize.codebooks.ResidualQuantizer`
    (``layout="residual"``: stages on the residual, with SoundStream's ``quantizer_dropout``)."""
    cls = QUANTIZERS[kind]
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if num_codebooks == 1:
        return cls(codebook_size, embedding_dim, **kw)
    if layout == "residual":
        return ResidualQuantizer(num_codebooks, lambda: cls(codebook_size, embedding_dim, **kw), quantizer_dropout)
    return GroupedQuantizer(num_codebooks, lambda: cls(codebook_size, embedding_dim, **kw))
