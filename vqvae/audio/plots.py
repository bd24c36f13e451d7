"""Spectrograms of speech: inputs, reconstructions and conversions side by side."""

from __future__ import annotations

from pathlib import Path

import torch

from vqvae.core.plots import pyplot, save_figure
from vqvae.nets.dsp import log_mel


def save_spectrograms(rows: list[tuple[str, torch.Tensor]], sample_rate: int, path: str | Path) -> None:
    """Log-mel spectrograms of waveforms, one panel per ``(title, waveform (T,) or (1, T))``,
    stacked vertically with a shared colour scale (e.g. input, reconstruction, conversion)."""
    plt = pyplot()
    specs = [log_mel(w.float().reshape(1, -1), sample_rate)[0].numpy() for _, w in rows]
    lo, hi = min(s.min() for s in specs), max(s.max() for s in specs)
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.9 * len(rows)), squeeze=False, sharex=True)
    hop_s = 64 / sample_rate
    for a, (title, _), spec in zip(axes[:, 0], rows, specs):
        a.imshow(spec, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma", extent=(0, spec.shape[1] * hop_s, 0, spec.shape[0]))
        a.set(ylabel="mel band", title=title)
    axes[-1, 0].set(xlabel="seconds")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=100)
    plt.close(fig)
