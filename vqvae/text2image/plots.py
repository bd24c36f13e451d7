"""DALL-E's pictures: prompts beside their samples, marked by whether the scene reader found them faithful."""

from __future__ import annotations

from pathlib import Path

import torch

from vqvae.core.plots import pyplot, save_figure


def save_prompt_grid(rows: list[tuple[str, torch.Tensor]], path: str | Path, marks: list[list[bool]] | None = None) -> None:
    """One row per prompt: its caption on the left, then its uint8 images ``(n, C, H, W)``; ``marks`` (optional,
    per image) frames a sample green when the reader found it faithful to its caption and red when not."""
    plt = pyplot()
    n = max(im.shape[0] for _, im in rows)
    fig, axes = plt.subplots(len(rows), n + 1, figsize=(1.1 * n + 3.2, 1.1 * len(rows)), squeeze=False,
                             gridspec_kw={"width_ratios": [3.0] + [1.0] * n})
    for r, (cap, ims) in enumerate(rows):
        axes[r, 0].text(1.0, 0.5, cap, ha="right", va="center", fontsize=8, wrap=True)
        for q in range(n + 1):
            axes[r, q].set_xticks([])
            axes[r, q].set_yticks([])
            if q == 0 or q > ims.shape[0]:
                axes[r, q].axis("off")
        for q in range(ims.shape[0]):
            ax = axes[r, q + 1]
            ax.imshow(ims[q].permute(1, 2, 0).cpu().numpy().squeeze(), cmap="gray" if ims.shape[1] == 1 else None, interpolation="nearest")
            if marks is not None:
                for s in ax.spines.values():
                    s.set_edgecolor("tab:green" if marks[r][q] else "tab:red")
                    s.set_linewidth(2)
    fig.tight_layout(pad=0.3)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)
    plt.close(fig)
