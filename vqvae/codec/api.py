"""The codec's Python API: shipped models by name, ``compress(image) -> bytes`` and ``decompress(bytes) -> image``."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vqvae.codec.codec import Codec
from vqvae.codec.container import CodecError, unpack
from vqvae.codec.defaults import DEFAULT_MODEL, DEFAULT_REFINE
from vqvae.core import zoo

CODEC_FILE = "codec.json"  # what makes a zoo model a codec: its levels, default quality and fingerprint


def _codec_name(key: str) -> str:
    return key[len(zoo.PREFIX):] if zoo.is_zoo(key) else key


def available_models(root: Path = zoo.ZOO) -> list[str]:
    """Names of the codec models that ship in the package's zoo (``vqvae/zoo/NAME/`` with a ``codec.json``)."""
    return [n for n in zoo.names(root) if (root / n / CODEC_FILE).is_file()]


def model_info(name: str, root: Path = zoo.ZOO) -> dict:
    """A shipped model's ``codec.json``: its levels, default quality and fingerprint (``{}`` if it does not ship)."""
    path = root / _codec_name(name) / CODEC_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


@functools.lru_cache(maxsize=4)
def _load(key: str, root: Path = zoo.ZOO) -> Codec:
    """``key``: a shipped model's name (as :func:`load_codec` passes it) or a run directory."""
    name = key
    if name in available_models(root):
        m = zoo.manifest(name, root)
        parts = {p: zoo.resolve(f"{zoo.PREFIX}{name}/{p}", root) for p in ("tokenizer", "prior") if p in m["parts"]}
        if len(parts) != 2:
            raise CodecError(f"zoo model {name} is not a codec: it needs a tokenizer and a prior part; reinstall vqvae")
        return Codec.from_dirs(parts["tokenizer"], parts["prior"], name, model_info(name, root).get("default_quality"))
    path = Path(key)
    if (path / "config.json").is_file():
        return Codec.from_run(path)
    installed = ", ".join(available_models(root)) or "none installed"
    raise CodecError(f"unknown codec model {key!r}: not a shipped model ({installed}; vqvae zoo lists them) "
                     f"and not a prior run directory")


def load_codec(model: str | Path | None = None, root: Path = zoo.ZOO) -> Codec:
    """A shipped model by name (``coco-rvq4`` or ``zoo:coco-rvq4``; default :data:`DEFAULT_MODEL`) or a prior run
    directory; loaded once per process (the zoo checks its files' SHA-256 first). ``root``: the zoo to look in."""
    key = str(model) if model is not None else DEFAULT_MODEL
    if _codec_name(key) in available_models(root):
        return _load(_codec_name(key), root)
    return _load(str(Path(key).resolve()) if Path(key).exists() else key, root)  # one cache entry per run directory


def as_tensor(image) -> torch.Tensor:
    """A PIL image, an ``(H, W)`` / ``(H, W, C)`` uint8 array or a ``(C, H, W)`` uint8 tensor -> uint8 ``(C, H, W)``.
    Alpha is dropped and palette/other modes become RGB or grey."""
    if isinstance(image, Image.Image):
        grey = image.mode in ("1", "L", "LA", "I", "I;16", "F")
        image = np.asarray(image.convert("L" if grey else "RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
            raise CodecError(f"expected a uint8 array (H, W) or (H, W, 1|3|4), got {image.dtype} {image.shape}")
        image = torch.from_numpy(np.array(image[..., :3] if image.ndim == 3 else image[..., None])).permute(2, 0, 1)
    if not isinstance(image, torch.Tensor):
        raise CodecError(f"expected a PIL image, a numpy array or a torch tensor, got {type(image).__name__}")
    return image.contiguous()


def compress(image, quality: int | None = None, model: str | Path | None = None, refine: int = DEFAULT_REFINE) -> bytes:
    """Compress an image (see :func:`as_tensor`) to ``.vqz`` bytes at ``quality`` (default: the model's,
    :attr:`Codec.default_quality`). ``refine``: steps of encoder-side rate-distortion optimisation
    (:mod:`vqvae.codec.refine`; default :data:`~vqvae.codec.defaults.DEFAULT_REFINE`, as for
    :meth:`Codec.compress` and ``vqvae compress``; 0: the encoder's greedy codes, fastest)."""
    return load_codec(model).compress(as_tensor(image), quality, refine=refine)[0]


def decompress(data: bytes, model: str | Path | None = None):
    """``.vqz`` bytes -> a PIL image (mode ``L`` or ``RGB``), with the model the file names (or ``model``)."""
    header, _ = unpack(data)
    codec = load_codec(model if model is not None else header.model)
    x = codec.decompress(data).numpy()
    return Image.fromarray(x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0))
