"""A run's image split from its data config: a known set, a folder, a .npy file, or the captioned scenes.

Which kind of data a run reads is its Task's to say (:meth:`vqvae.core.task.Task.load_split`); audio splits
come from :func:`vqvae.data.audio.audio_split`.
"""

from __future__ import annotations

import torch

from vqvae.data import doom, scenes
from vqvae.data.images import load_images, resize
from vqvae.data.sets import ImageSet


def image_split(d, split: str, root: str | None = None) -> ImageSet:
    """``split`` of the image dataset ``d.name`` (a known set, a folder, a .npy file, ``scenes``/``scenes:N``, or the
    frames of ``doom``/``doom:N``, resized to ``data.image_size`` if set),
    resized and converted as ``d`` says; ``root`` overrides ``d.root``."""
    root = root or d.root
    n = scenes.parse_name(d.name)
    if n is not None:  # the captioned scenes, as plain images
        return ImageSet(scenes.scene_split(n, split, root).images.clone(), None, None, d.name)
    n = doom.parse_name(d.name)
    if n is not None:  # ViZDoom episodes, as frames
        ep = doom.episodes(n, split, d.scenario, root)
        frames = torch.from_numpy(ep.frames.reshape(-1, *ep.frames.shape[2:]))
        return ImageSet(resize(frames, d.image_size) if d.image_size else frames, None, None, d.name)
    return load_images(d.name, split, root=root, image_size=d.image_size or None, channels=d.channels or None, download=d.download)
