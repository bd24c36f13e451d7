"""Gated PixelCNN prior over VQ-VAE codes.

Papers: van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders" (the gated, blind-spot-free, class-conditional PixelCNN), used as
the prior p(z) of van den Oord et al. 2017, "Neural Discrete Representation
Learning", section 3.2 (fit after the VQ-VAE, sampled ancestrally).

Factorisation. The code map ``(B, H, W)`` (or ``(B, G, H, W)`` with ``G``
codebooks) is read in raster order over *cells* ``(i, j)``::

    p(z) = prod_{(i, j)} prod_g p(z[g, i, j] | z[:, cells before (i, j)])

All ``G`` codes of a cell are predicted from the cells strictly before it and
are conditionally independent of one another given that context (masking is
spatial only: the net sees a cell's codes as one embedded feature). This is
still a valid autoregressive model in the sequence order of
:func:`~vqvae.priors.sequence.to_sequence` (raster, codebook fastest): position
``l = (i*W + j)*G + g`` is predicted from a subset of positions ``< l``.

Architecture (paper, section 2.1-2.2 and figure 2). Each gated layer has

* a **vertical stack** whose convolution at row ``i`` sees rows ``<= i`` (a
  ``(k//2 + 1) x k`` kernel with top/left/right padding only). Its output is
  shifted **down by one row** before it reaches the horizontal stack, so row
  ``i`` of the horizontal stack gets information from rows ``< i`` only, over
  the full width of the receptive field: no blind spot (a plain masked 3x3 conv
  PixelCNN never sees the wedge above-right of a pixel);
* a **horizontal stack** whose convolution at ``(i, j)`` sees ``(i, j' <= j)``
  (type B) or ``(i, j' < j)`` (type A, the first layer, so a cell never sees its
  own codes), plus a 1x1 **link** from the shifted vertical pre-activations;
* **gated activations** ``tanh(a) * sigmoid(b)`` on both stacks, where ``a``,
  ``b`` are the two halves of a ``2C``-channel pre-activation, plus an optional
  per-layer class embedding added as a bias to both (conditional PixelCNN);
* a **residual** 1x1 connection in the horizontal stack (not in layer 0, whose
  input is the embedding of the current cell) and a **skip** 1x1 connection
  summed over layers into the output head
  ``ReLU -> 1x1 -> ReLU -> 1x1 -> G*K`` logits per cell.

Receptive field. Output row ``i`` depends on input rows
``i - R .. i`` with ``R = 1 + first_kernel//2 + (layers-1)*(kernel//2)``
(:attr:`PixelCNNPrior.receptive_rows`): sampling reuses this to run the
vertical stack on a band of rows only, and the horizontal stack on one row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vqvae.core.errors import require
from vqvae.priors.sequence import (
    PriorConfig,
    PriorOutput,
    check_labels,
    sample_setup,
    prior_loss,
    sample_from,
    to_sequence,
)


@dataclass
class PixelCNNConfig(PriorConfig):
    """Gated PixelCNN prior. Defaults follow the PixelCNN-over-codes prior of
    the VQ-VAE paper at a modest size (the paper's ImageNet prior is larger)."""

    channels: int = 128  # C: feature channels of both stacks
    layers: int = 12  # gated layers, the first of type A
    first_kernel: int = 7  # kernel of the type-A layer (odd, >= 3)
    kernel: int = 3  # kernel of the type-B layers (odd)
    out_hidden: int = 512  # hidden channels of the output head

    def validate(self) -> None:
        super().validate()
        checks = [
            (self.channels >= 1, "model.channels must be >= 1"),
            (self.layers >= 1, "model.layers must be >= 1"),
            (self.first_kernel >= 3 and self.first_kernel % 2 == 1, "model.first_kernel must be odd and >= 3"),
            (self.kernel >= 1 and self.kernel % 2 == 1, "model.kernel must be odd and >= 1"),
            (self.out_hidden >= 1, "model.out_hidden must be >= 1"),
            (self.order == "raster", "the PixelCNN models codes in raster order (codebook fastest): model.order must be 'raster'; "
                                     "use the transformer prior for order 'codebook'"),
        ]
        require(checks)


class _RowConv(nn.Module):
    """Horizontal-stack conv: ``1 x width`` kernel over columns ``j - width + 1 - a .. j - a``
    of the same row, ``a = 1`` for type A (excludes the current cell), 0 for type B.

    Implemented with left padding only (``width - 1 + a`` columns) and a crop to
    the input width, so output column ``j`` never sees columns ``> j`` (or ``j``
    itself for type A). ``(B, Cin, H, W) -> (B, Cout, H, W)``."""

    def __init__(self, cin: int, cout: int, width: int, type_a: bool):
        super().__init__()
        self.pad = width - 1 + int(type_a)
        self.conv = nn.Conv2d(cin, cout, (1, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.pad, 0, 0, 0)))[..., : x.shape[-1]]


class _ColConv(nn.Module):
    """Vertical-stack conv: ``(k//2 + 1) x k`` kernel over rows ``i - k//2 .. i`` and
    columns ``j - k//2 .. j + k//2`` (padding top, left and right, never bottom).

    It sees the current row, including cells to the right of ``(i, j)``; that is
    harmless because the stack's output reaches the horizontal stack only after
    a one-row down shift. ``(B, Cin, H, W) -> (B, Cout, H, W)``."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.half = k // 2
        self.conv = nn.Conv2d(cin, cout, (self.half + 1, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.half, self.half, self.half, 0)))


def _gate(x: torch.Tensor) -> torch.Tensor:
    """Gated activation ``tanh(a) * sigmoid(b)`` (paper, eq. 2); ``(B, 2C, ...) -> (B, C, ...)``."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class _GatedLayer(nn.Module):
    """One gated layer (paper, figure 2): vertical and horizontal stacks, link, residual, skip."""

    def __init__(self, c: int, k: int, type_a: bool, num_classes: int, dropout: float):
        super().__init__()
        self.type_a = type_a
        self.v_conv = _ColConv(c, 2 * c, k)
        self.h_conv = _RowConv(c, 2 * c, k // 2 + (0 if type_a else 1), type_a)
        self.link = nn.Conv2d(2 * c, 2 * c, 1)  # vertical -> horizontal
        self.res = nn.Conv2d(c, c, 1)
        self.skip = nn.Conv2d(c, c, 1)
        self.drop = nn.Dropout(dropout)
        self.cond = nn.Embedding(num_classes, 2 * c) if num_classes else None

    def vertical(self, v: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``v (B, C, h, W)`` -> (next vertical input ``(B, C, h, W)``, *unshifted* link term ``(B, 2C, h, W)``).

        Row ``r`` of the link term must be fed to horizontal row ``r + 1``."""
        pre = self.v_conv(v)
        if cond is not None:
            pre = pre + cond
        return _gate(pre), self.link(pre)

    def horizontal(
        self, h: torch.Tensor, link: torch.Tensor, cond: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``h (B, C, h, w)`` and the already *shifted* link -> (next h, skip), both ``(B, C, h, w)``."""
        pre = self.h_conv(h) + link
        if cond is not None:
            pre = pre + cond
        g = self.drop(_gate(pre))
        out = self.res(g) if self.type_a else h + self.res(g)
        return out, self.skip(g)


class PixelCNNPrior(nn.Module):
    """Gated PixelCNN over a ``(H, W)`` or ``(G, H, W)`` code map with ``K`` codes per codebook.

    ``forward(codes, labels)`` gives :class:`~vqvae.priors.sequence.PriorOutput`
    with ``logits (B, L, K)`` in :func:`~vqvae.priors.sequence.to_sequence` order;
    ``sample(n, ...)`` draws code maps cell by cell.
    """

    config_cls = PixelCNNConfig

    def __init__(self, config: PixelCNNConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        # One table of G*K rows: code k of codebook g is row g*K + k. Summing the G
        # embeddings of a cell equals concatenating them and projecting linearly.
        self.embed = nn.Embedding(c.num_codebooks * c.codebook_size, c.channels)
        self.register_buffer(
            "offsets", torch.arange(c.num_codebooks).view(1, -1, 1, 1) * c.codebook_size, persistent=False
        )
        self.layers = nn.ModuleList(
            _GatedLayer(c.channels, c.first_kernel if i == 0 else c.kernel, i == 0, c.num_classes, c.dropout)
            for i in range(c.layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c.channels, c.out_hidden, 1),
            nn.ReLU(),
            nn.Conv2d(c.out_hidden, c.num_codebooks * c.codebook_size, 1),
        )

    @property
    def receptive_rows(self) -> int:
        """``R``: output row ``i`` depends on input rows ``i - R .. i`` only (one row of
        down shift plus ``k//2`` rows per vertical conv)."""
        c = self.config
        return 1 + c.first_kernel // 2 + (c.layers - 1) * (c.kernel // 2)

    # -- building blocks -------------------------------------------------------------

    def _embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, G, h, w)`` int64 -> cell features ``(B, C, h, w)`` (sum over codebooks)."""
        return self.embed(codes + self.offsets).sum(1).permute(0, 3, 1, 2)

    def _conds(self, labels: torch.Tensor | None) -> list[torch.Tensor | None]:
        """Per-layer class biases ``(B, 2C, 1, 1)`` (or ``None`` when unconditional)."""
        if labels is None:
            return [None] * len(self.layers)
        return [layer.cond(labels)[:, :, None, None] for layer in self.layers]

    def _links(self, x: torch.Tensor, conds: list) -> list[torch.Tensor]:
        """Run the vertical stack on features ``(B, C, h, W)``; returns per layer the
        unshifted link terms ``(B, 2C, h, W)`` (row ``r`` serves horizontal row ``r + 1``)."""
        links, v = [], x
        for layer, cond in zip(self.layers, conds):
            v, link = layer.vertical(v, cond)
            links.append(link)
        return links

    def _horizontal(self, x: torch.Tensor, links: list[torch.Tensor], conds: list) -> torch.Tensor:
        """Horizontal stack and head: features ``(B, C, h, w)`` and *shifted* links
        ``(B, 2C, h, w)`` -> logits ``(B, G*K, h, w)``."""
        h, skip = x, 0
        for layer, link, cond in zip(self.layers, links, conds):
            h, s = layer.horizontal(h, link, cond)
            skip = skip + s
        return self.head(skip)

    def _logits_map(self, codes: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Full-map pass: codes ``(B, G, H, W)`` -> spatial logits ``(B, G*K, H, W)``.

        The down shift: row 0 of the horizontal stack gets a zero link, row ``i``
        the vertical stack's row ``i - 1``."""
        conds = self._conds(labels)
        x = self._embed(codes)
        links = [F.pad(link, (0, 0, 1, 0))[:, :, :-1] for link in self._links(x, conds)]
        return self._horizontal(x, links, conds)

    def _to_seq_logits(self, logits_map: torch.Tensor) -> torch.Tensor:
        """``(B, G*K, H, W)`` -> ``(B, H*W*G, K)`` in raster order, codebook fastest."""
        c = self.config
        b, _, h, w = logits_map.shape
        k = c.codebook_size
        return logits_map.reshape(b, c.num_codebooks, k, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, k)

    # -- public API ------------------------------------------------------------------

    def forward(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> PriorOutput:
        """Teacher-forced pass. ``codes``: ``(B, H, W)`` or ``(B, G, H, W)`` integers in
        ``[0, K)``; ``labels``: ``(B,)`` in ``[0, num_classes)`` for a conditional prior.

        Returns ``logits (B, L, K)``, the mean NLL per code (nats) and ``nll_bits (B,)``."""
        c = self.config
        seq = to_sequence(codes, c, values=not self.training)  # shape and dtype; the range too (training data: when prepared)
        labels = check_labels(labels, seq.shape[0], c, seq.device, values=not self.training)
        grid = codes.long().reshape(-1, c.num_codebooks, c.height, c.width)
        return prior_loss(self._to_seq_logits(self._logits_map(grid, labels)), seq)

    def log_prob_bits(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``-log2 p(codes)`` per map, ``(B,)`` bits."""
        return self.forward(codes, labels).nll_bits

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        naive: bool = False,
    ) -> torch.Tensor:
        """Ancestral sampling of ``n`` code maps, all ``G`` codes of a cell at once.

        Returns int64 ``(n, H, W)`` or ``(n, G, H, W)`` on the model's device. The
        filters are those of :func:`~vqvae.priors.sequence.filter_logits`; a seeded
        ``generator`` makes the draw reproducible. Runs in eval mode (no dropout).

        Work reuse: while row ``i`` is sampled, rows ``< i`` are fixed, so the
        vertical stack's contribution to row ``i`` (its row ``i - 1``) is computed
        once per row on the band of rows ``i - R .. i - 1`` (``R`` =
        :attr:`receptive_rows`; rows above cannot reach row ``i``, and the zero
        padding at the band's top only corrupts rows that row ``i`` does not
        use). Each cell ``(i, j)`` then runs only the horizontal stack and head
        on row ``i``, columns ``0 .. j``. ``naive=True`` recomputes the whole map
        per cell instead (the reference the tests compare against)."""
        c = self.config
        device = self.offsets.device
        labels, filters = sample_setup(n, labels, c, device, temperature, top_k, top_p)
        g, k, hh, ww = c.num_codebooks, c.codebook_size, c.height, c.width
        codes = torch.zeros(n, g, hh, ww, dtype=torch.long, device=device)
        was_training = self.training
        self.eval()
        try:
            conds = self._conds(labels)
            for i in range(hh):
                if not naive:
                    if i == 0:  # the down shift gives row 0 a zero link
                        x0 = self._embed(codes[:, :, :1])
                        row_links = [torch.zeros(n, 2 * c.channels, 1, ww, dtype=x0.dtype, device=device)] * len(conds)
                    else:
                        band = codes[:, :, max(0, i - self.receptive_rows) : i]
                        row_links = [link[:, :, -1:] for link in self._links(self._embed(band), conds)]
                for j in range(ww):
                    if naive:
                        logits = self._logits_map(codes, labels)[:, :, i, j]
                    else:
                        x = self._embed(codes[:, :, i : i + 1, : j + 1])
                        links = [link[..., : j + 1] for link in row_links]
                        logits = self._horizontal(x, links, conds)[:, :, 0, j]
                    codes[:, :, i, j] = sample_from(logits.reshape(n, g, k), generator, **filters)
        finally:
            self.train(was_training)
        return codes.reshape(n, *c.code_shape)
