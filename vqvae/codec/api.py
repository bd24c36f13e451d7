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

MODEL_DIR = Path(__file__).resolve().parent / "models"


def _has_weights(d: Path) -> bool:
    return all((d / sub / name).is_file() for sub in ("tokenizer", "prior") for name in ("config.json", "model.safetensors"))


def available_models() -> list[str]:
    """Names of the codec models installed in the package (configs and weights present)."""
    if not MODEL_DIR.is_dir():
        return []
    return sorted(p.name for p in MODEL_DIR.iterdir() if _has_weights(p))


def model_info(name: str) -> dict:
    """A shipped model's ``codec.json``: its default quality and what each level measured."""
    path = MODEL_DIR / name / "codec.json"
    return json.loads(path.read_text()) if path.is_file() else {}


@functools.lru_cache(maxsize=4)
def _load(key: str) -> Codec:
    if key in available_models():
        return Codec.from_dirs(MODEL_DIR / key / "tokenizer", MODEL_DIR / key / "prior", key, model_info(key).get("default_quality"))
    path = Path(key)
    if (path / "config.json").is_file():
        return Codec.from_run(path)
    if (MODEL_DIR / key / "MODEL_CARD.md").is_file():
        raise CodecError(f"codec model {key!r} is not built: its weights are not in the repository. Train it with the commands in "
                         f"{MODEL_DIR / key / 'MODEL_CARD.md'} (about 3 hours on 2 CPU cores), then: vqvae codec-export PRIOR_RUN --name {key}")
    installed = ", ".join(available_models()) or "none installed"
    raise CodecError(f"unknown codec model {key!r}: not an installed model ({installed}) and not a prior run directory")


def load_codec(model: str | Path | None = None) -> Codec:
    """An installed model by name (default: :data:`DEFAULT_MODEL`) or a prior run directory; loaded once per process."""
    key = str(model) if model is not None else DEFAULT_MODEL
    if key not in available_models() and Path(key).exists():
        key = str(Path(key).resolve())  # one cache entry per run directory, however it was spelled
    return _load(key)


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
