"""Convolutional nets over large images in overlapping windows, so memory is bounded by the window.

A grid of latent cells is cut into ``window x window`` cores in raster order;
each is run with ``margin`` cells of real context around it (more than the
nets' receptive field) and only its core is kept, so the result matches one
pass over the whole input. :func:`windows` is the one loop: :func:`windowed`
(the codec's encoder and decoder, and every image command's: :mod:`vqvae.image.inference`) and the rate-distortion
search of :mod:`vqvae.codec.refine` both walk it. :func:`margin_for` sizes the context for a net's depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

WINDOW = 64  # latent cells per side of a window through the conv nets (images larger than this go window by window)
MARGIN = 6  # latent cells of context around each window (more than the nets' receptive field)


def margin_for(num_res_blocks: int) -> int:
    """Latent cells of context that cover the receptive field of the image encoder and decoder
    (:mod:`vqvae.nets.image`): under 2 cells from the strided convolutions, one per 3 x 3 convolution at the latent
    resolution (the residual blocks' and one more), and one to spare."""
    return max(MARGIN, 4 + num_res_blocks)


@dataclass(frozen=True)
class Window:
    """One window of a grid of latent cells: the cells it owns (``core``, ``[i0, i1) x [j0, j1)``) and the cells it
    is run on (``context``: the core with ``margin`` cells of real context around it, clipped to the grid)."""

    i0: int
    i1: int
    j0: int
    j1: int
    a0: int
    a1: int
    b0: int
    b1: int

    def context(self, unit: int = 1) -> tuple[slice, slice]:
        """The context's rows and columns, in cells of ``unit`` samples (pixels: the downsampling)."""
        return slice(self.a0 * unit, self.a1 * unit), slice(self.b0 * unit, self.b1 * unit)

    def core(self, unit: int = 1) -> tuple[slice, slice]:
        """The core's rows and columns in the grid, in cells of ``unit`` samples."""
        return slice(self.i0 * unit, self.i1 * unit), slice(self.j0 * unit, self.j1 * unit)

    def core_in_context(self, unit: int = 1) -> tuple[slice, slice]:
        """The core's rows and columns within the context, in cells of ``unit`` samples."""
        return (slice((self.i0 - self.a0) * unit, (self.i1 - self.a0) * unit),
                slice((self.j0 - self.b0) * unit, (self.j1 - self.b0) * unit))


def windows(cells: tuple[int, int], window: int = WINDOW, margin: int = MARGIN) -> list[Window]:
    """A grid of ``cells`` latent cells cut into ``window x window`` cores in raster order, each with its context."""
    gh, gw = cells
    out = []
    for i0 in range(0, gh, window):
        for j0 in range(0, gw, window):
            i1, j1 = min(i0 + window, gh), min(j0 + window, gw)
            out.append(Window(i0, i1, j0, j1, max(i0 - margin, 0), min(i1 + margin, gh), max(j0 - margin, 0), min(j1 + margin, gw)))
    return out


def windowed(fn, x: torch.Tensor, cells: tuple[int, int], in_unit: int, out_unit: int,
             window: int = WINDOW, margin: int = MARGIN) -> torch.Tensor:
    """Apply a convolutional ``fn`` to ``x`` window by window over a grid of ``cells`` latent cells.

    ``x``'s last two dims are ``cells * in_unit``; ``fn``'s output's are ``cells * out_unit``
    (encoder: ``in_unit = f``, ``out_unit = 1``; decoder: the reverse). Each window
    is run with ``margin`` cells of real context around it and only its centre is
    kept, so the result matches one pass over the whole input while memory is
    bounded by the window."""
    gh, gw = cells
    if gh <= window and gw <= window:
        return fn(x)
    out = None
    for w in windows(cells, window, margin):
        rows, cols = w.context(in_unit)
        y = fn(x[..., rows, cols])
        if out is None:
            out = y.new_zeros(*y.shape[:-2], gh * out_unit, gw * out_unit)
        (r, c), (rr, cc) = w.core(out_unit), w.core_in_context(out_unit)
        out[..., r, c] = y[..., rr, cc]
    return out


def windowed_1d(fn, x: torch.Tensor, cells: int, in_unit: int, out_unit: int, window: int, margin: int) -> torch.Tensor:
    """:func:`windowed` along the last dim only (signals in time): ``x``'s last dim is ``cells * in_unit``, ``fn``'s
    output's ``cells * out_unit``; each window of ``window`` cells runs with ``margin`` cells of real context each side."""
    if cells <= window:
        return fn(x)
    out = None
    for w in windows((1, cells), window, margin):
        y = fn(x[..., w.context(in_unit)[1]])
        if out is None:
            out = y.new_zeros(*y.shape[:-1], cells * out_unit)
        out[..., w.core(out_unit)[1]] = y[..., w.core_in_context(out_unit)[1]]
    return out
