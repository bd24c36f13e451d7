"""Pictures of a run that every family draws: image grids, reconstructions, codebook usage, loss curves.

Everything renders with matplotlib's Agg backend (no display needed) or Pillow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vqvae.core.files import atomic_write_with


def pyplot():
    """matplotlib's pyplot on the Agg backend (imported on first use: matplotlib is slow to import)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def image_grid(images: torch.Tensor, nrow: int = 8, pad: int = 2, value: int = 255) -> np.ndarray:
    """uint8 ``(N, C, H, W)`` -> one uint8 ``(H', W', C)`` grid with ``nrow`` images per row."""
    n, c, h, w = images.shape
    ncol = min(nrow, n)
    rows = -(-n // ncol)
    grid = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad, c), value, dtype=np.uint8)
    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = arr[i]
    return grid


def grid_image(images: torch.Tensor, nrow: int = 8, scale: int = 1, pad: int = 2) -> Image.Image:
    """uint8 ``(N, C, H, W)`` as one PIL image: :func:`image_grid`, scaled up ``scale`` times (nearest neighbour)."""
    g = image_grid(images, nrow, pad=pad)
    img = Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def save_figure(fig, path: str | Path, dpi: int = 100) -> None:
    """A matplotlib figure as a PNG, written atomically (never a half-written picture)."""
    atomic_write_with(Path(path), lambda f: fig.savefig(f, format="png", dpi=dpi))


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, scale: int = 1) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    im = grid_image(images, nrow, scale)
    atomic_write_with(Path(path), lambda f: im.save(f, format="PNG"))


def save_reconstructions(originals: torch.Tensor, recons: torch.Tensor, path: str | Path, nrow: int = 8) -> None:
    """Rows alternate: ``nrow`` originals, then their reconstructions."""
    pairs = []
    for s in range(0, originals.shape[0], nrow):
        pairs += [originals[s : s + nrow], recons[s : s + nrow]]
    scale = max(1, 64 // originals.shape[-1])
    save_grid(torch.cat(pairs), path, nrow, scale)


def save_codebook_usage(counts: np.ndarray, path: str | Path, title: str = "") -> None:
    """Bar chart of code frequencies sorted by use, with usage and perplexity."""
    plt = pyplot()
    counts = np.asarray(counts, dtype=np.float64)
    k = counts.size
    p = counts / max(counts.sum(), 1)
    nz = p[p > 0]
    ppl = float(np.exp(-(nz * np.log(nz)).sum())) if nz.size else 0.0
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    axes[0].bar(np.arange(k), counts, width=1.0, color="tab:blue")
    axes[0].set(xlabel="code index", ylabel="count", title="usage by code")
    axes[1].bar(np.arange(k), np.sort(counts)[::-1], width=1.0, color="tab:orange")
    axes[1].set(xlabel="rank", ylabel="count", title="sorted", yscale="log" if counts.max() > 0 else "linear")
    fig.suptitle(f"{title}  used {int((counts > 0).sum())}/{k} ({100 * (counts > 0).mean():.1f}%), perplexity {ppl:.1f}".strip())
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def save_loss_curves(metrics_path: str | Path, path: str | Path, panels=(("loss", "loss", "loss"),)) -> None:
    """Curves against step from metrics.jsonl: one panel per ``(train key, test key, title)``
    (a key may be ``None``; panels with no data are left out); losses on a log scale."""
    plt = pyplot()
    train, evals = [], []
    for line in Path(metrics_path).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            (train if r.get("kind") == "train" else evals).append(r)
    keys = {k for r in train + evals for k in r}
    panels = [p for p in panels if p[0] in keys or p[1] in keys] or list(panels)[:1]  # a task's panels this run has data for
    fig, axes = plt.subplots(1, len(panels), figsize=(4.7 * len(panels), 3.5), squeeze=False)
    for a, (tk, ek, title) in zip(axes[0], panels):
        rows = [r for r in train if tk and tk in r]
        if rows:
            a.plot([r["step"] for r in rows], [r[tk] for r in rows], label="train", alpha=0.7)
        rows = [r for r in evals if ek and ek in r]
        if rows:
            a.plot([r["step"] for r in rows], [r[ek] for r in rows], "o-", label="test")
        a.set(xlabel="step", title=title, yscale="log" if title == "loss" else "linear")
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
