"""Captioned images for DALL-E's transformer (stage 2): the project's scenes, or the COCO-mini photos.

``captioned_split(name, split, root, target)`` -> ``(images uint8 (N, C, target, target), captions)``:

* ``scenes`` / ``scenes:N``: the captioned scenes (:mod:`vqvae.data.scenes`), one
  caption per scene, already 64 x 64.
* ``coco`` / ``coco-mini`` / ``coco-mini-captions``: the COCO-mini photos
  (``train2017`` for train, ``val2017`` for test) with their five captions
  each; every (photo, caption) pair is one example. Photos go through DALL-E's
  stage-2 preprocessing (:func:`vqvae.data.augment.transformer_crop`: a square
  near the centre, resized to 9/8 of ``target``, a random ``target`` crop, no
  flip), seeded so a split is the same every time. Real but tiny (159 photos):
  good for the BPE and a smoke test, not for quality.
"""

from __future__ import annotations

import json

import torch

from vqvae.core.errors import DataError, VQVAEError
from vqvae.data import scenes
from vqvae.data.augment import transformer_crop
from vqvae.data.images import open_image, to_array
from vqvae.data.roots import data_roots

COCO_NAMES = ("coco", "coco-mini", "coco-mini-captions")


def captioned_split(name: str, split: str, root: str | None = None, target: int = 64, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    n = scenes.parse_name(name)
    if n is not None:
        sc = scenes.scene_split(n, split, root)
        return sc.images, sc.captions
    if name.lower() in COCO_NAMES:
        return _coco(split, root, target, seed)
    raise VQVAEError(f"dalle train takes captioned images: the scenes (scenes, scenes:N) or COCO-mini ({', '.join(COCO_NAMES)}), got {name!r}")


def _coco(split: str, root: str | None, target: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    folder = next((r / "coco-mini-captions" for r in data_roots(root) if (r / "coco-mini-captions").is_dir()), None)
    if folder is None:
        raise DataError("COCO-mini not found: looked for coco-mini-captions under " + ", ".join(str(r) for r in data_roots(root)))
    sub = folder / ("train2017" if split == "train" else "val2017")
    g = torch.Generator().manual_seed(seed + (0 if split == "train" else 1))
    images, captions = [], []
    for fname, caps in coco_captions(root, "train" if split == "train" else "test"):
        if not caps or not (sub / fname).is_file():
            continue
        x = torch.from_numpy(to_array(open_image(sub / fname), 3).copy())
        for c in caps:
            images.append(transformer_crop(x, target, g))  # a fresh crop per caption
            captions.append(c)
    if not images:
        raise DataError(f"no captioned photos in {sub}")
    return torch.stack(images), captions


def coco_captions(root: str | None = None, split: str = "train") -> list[tuple[str, list[str]]]:
    """COCO-mini captions: ``[(image file name, [captions])]`` from ``coco-mini-captions/annotations``."""
    name = {"train": "captions_train2017.json", "test": "captions_val2017.json"}[split]
    for r in data_roots(root):
        f = r / "coco-mini-captions" / "annotations" / name
        if f.is_file():
            d = json.loads(f.read_text())
            caps: dict[int, list[str]] = {}
            for a in d["annotations"]:
                caps.setdefault(a["image_id"], []).append(a["caption"].strip())
            return [(im["file_name"], caps.get(im["id"], [])) for im in d["images"]]
    raise DataError(f"COCO-mini captions not found: looked for coco-mini-captions/annotations/{name} under "
                    + ", ".join(str(r) for r in data_roots(root)))
