"""Learned image compression: ``compress(image) -> bytes`` and ``decompress(bytes) -> image``.

The codes of a residual VQ-VAE are range-coded under a transformer prior
(:mod:`vqvae.codec.codec`) into ``.vqz`` files (:mod:`vqvae.codec.container`).
Named models ship in the package's zoo (``vqvae/zoo/<name>/``, :mod:`vqvae.core.zoo`:
a tokenizer and a prior run, ``codec.json``, a model card, every file's SHA-256
checked on load); ``vqvae codec-export`` makes one from training runs. ``model``
may also be the path of a prior run trained with ``vqvae prior train
--tokenizer RUN --tile T``. A file names the model it needs, so
``decompress`` finds a shipped model by itself.

Symmetric names, as CompressAI's: :func:`compress` / :func:`decompress`. The
names below are loaded on first use (:mod:`vqvae.codec.api`), so importing
this package (as ``vqvae --help`` does, for the defaults) costs nothing.
"""

from __future__ import annotations

import importlib

from vqvae.codec.defaults import DEFAULT_MODEL, DEFAULT_REFINE

_LAZY = {"Codec": "vqvae.codec.codec", "CompressStats": "vqvae.codec.codec", "CodecError": "vqvae.codec.container",
         "Header": "vqvae.codec.container", "unpack": "vqvae.codec.container", "CODEC_FILE": "vqvae.codec.api",
         "available_models": "vqvae.codec.api", "as_tensor": "vqvae.codec.api", "compress": "vqvae.codec.api",
         "decompress": "vqvae.codec.api", "load_codec": "vqvae.codec.api", "model_info": "vqvae.codec.api"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vqvae.codec' has no attribute {name!r}")


__all__ = ["DEFAULT_MODEL", "DEFAULT_REFINE", *_LAZY]
