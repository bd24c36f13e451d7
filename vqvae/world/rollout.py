"""Rollouts of the video model against the true game: frames generated under actions, the frames the game really
shows under the same actions (ViZDoom replays an episode exactly), how far they agree over the horizon, and an
animated GIF of both side by side.

A rollout starts at step ``s`` of a doom episode: its context is the real frames up to ``s`` (the last ``T - 1``),
encoded by the per-frame tokenizer; the model then draws one frame per action. The true frames come from replaying the
episode's recorded actions up to ``s`` and the rollout's actions after (:func:`vqvae.data.doom.replay`).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from vqvae.core.errors import DataError
from vqvae.core.files import atomic_write
from vqvae.core.task import tokenizer_task
from vqvae.data import doom
from vqvae.data.images import resize
from vqvae.image import metrics


def frame_size(tok_cfg) -> int:
    """The side of the per-frame tokenizer's frames (its data.image_size, or the doom frames' 84)."""
    return tok_cfg.data.image_size or doom.FRAME


@torch.no_grad()
def generate(video, tok_cfg, tok, context: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None = None,
             temperature: float = 1.0) -> torch.Tensor:
    """uint8 context frames ``(B, c, 3, S, S)`` at the tokenizer's size and ``actions (B, c + n - 1)`` -> ``n`` generated
    uint8 frames ``(B, n, 3, S, S)``."""
    task = tokenizer_task(tok_cfg.arch, "the video model's tokenizer")
    b, c = context.shape[:2]
    codes = torch.from_numpy(task.encode(tok, context.flatten(0, 1))).view(b, c, *task_shape(video))
    dev = next(video.parameters()).device
    new = video.rollout(codes.to(dev), actions.to(dev), generator, temperature)  # (B, n, h, w)
    frames = task.decode(tok, new.flatten(0, 1).cpu())
    return frames.view(b, -1, *frames.shape[1:])


def task_shape(video) -> tuple[int, int]:
    return video.config.height, video.config.width


def true_rollout(scenario: str, episode: int, step: int, recorded: np.ndarray, actions: list[int]) -> dict[str, np.ndarray]:
    """The game's frames and variables from step ``step`` on under ``actions`` (after the recorded ones up to ``step``):
    ``len(actions) + 1`` of each, the first the start frame."""
    out = doom.replay(scenario, episode, list(recorded[:step]) + list(actions))
    return {k: v[step:] for k, v in out.items()}


PSNR_CAP = 50.0  # dB: a frame equal to the truth (the player standing still) scores this, not infinity


def horizon_scores(true: torch.Tensor, generated: torch.Tensor, last: torch.Tensor) -> dict:
    """PSNR (each frame's capped at :data:`PSNR_CAP`) and SSIM per step ahead (means over rollouts) of ``generated
    (B, n, ...)`` and of copying the last context frame ``last (B, ...)``, against ``true (B, n, ...)``."""
    n = true.shape[1]
    out = {"psnr": [], "ssim": [], "copy_psnr": [], "copy_ssim": []}
    for t in range(n):
        for key, frames in (("", generated[:, t]), ("copy_", last)):
            mse = metrics.mse_per_image(frames, true[:, t])
            out[key + "psnr"].append(float(np.mean([min(PSNR_CAP, metrics.psnr_from_mse(float(m))) for m in mse])))
            out[key + "ssim"].append(float(metrics.ssim_per_image(frames, true[:, t]).mean()))
    return out


def write_gif(true: torch.Tensor, generated: torch.Tensor, actions: list[int], path: str | Path, scale: int = 3,
              ms: int = 250) -> Path:
    """An animated GIF: the true frames (left) and the generated ones (right), ``(n, 3, S, S)`` each, with the action
    that led to each frame; written atomically."""
    if true.shape != generated.shape:
        raise DataError(f"true and generated frames differ in shape: {tuple(true.shape)} and {tuple(generated.shape)}")
    s = true.shape[-1] * scale
    pictures = []
    for t in range(true.shape[0]):
        im = Image.new("RGB", (2 * s + 8, s + 18), (255, 255, 255))
        for k, f in enumerate((true[t], generated[t])):
            im.paste(Image.fromarray(f.permute(1, 2, 0).numpy()).resize((s, s), Image.NEAREST), (k * (s + 8), 18))
        act = doom.ACTIONS[actions[t - 1]] if t else "start"
        ImageDraw.Draw(im).text((4, 3), f"true | model   step {t}  ({act})", fill=(0, 0, 0))
        pictures.append(im)
    path = Path(path)
    buf = io.BytesIO()
    pictures[0].save(buf, format="GIF", save_all=True, append_images=pictures[1:], duration=ms, loop=0)
    atomic_write(path, buf.getvalue())
    return path


def context_frames(frames: np.ndarray, step: int, keep: int, size: int) -> torch.Tensor:
    """The real frames ``step - keep + 1 .. step`` (fewer at an episode's start) at the tokenizer's size, ``(1, c, 3, S, S)``."""
    x = torch.from_numpy(frames[max(0, step - keep + 1) : step + 1])
    return (resize(x, size) if size != x.shape[-1] else x)[None]
