"""vqvae: neural discrete representation learning.

The public API, loaded on first use (so ``import vqvae`` costs nothing):

* :func:`load` / :func:`load_run` (a run directory, or ``"zoo:NAME[/PART]"`` for a model that ships with the package,
  -> ``(config, model)`` in eval mode), :func:`create_model` (arch name + config dataclass -> model);
* :func:`compress` / :func:`decompress` (the learned image codec);
* the packages: ``vqvae.core``, ``vqvae.quantize``, ``vqvae.nets``, ``vqvae.data`` and the families
  ``vqvae.image``, ``vqvae.priors``, ``vqvae.audio``, ``vqvae.text2image``, ``vqvae.codec``, ``vqvae.scoring``
  (ARCHITECTURE.md is the map).

``vqvae.checkpoint`` and ``vqvae.inference`` still name :mod:`vqvae.core.checkpoint` and
:mod:`vqvae.image.inference`, as before the packages were split by family.
"""

from __future__ import annotations

import importlib

_LAZY = {"load": ("vqvae.core.checkpoint", "load_run"), "load_run": ("vqvae.core.checkpoint", "load_run"), "create_model": ("vqvae.registry", "create_model"), "compress": ("vqvae.codec.api", "compress"),
         "decompress": ("vqvae.codec.api", "decompress")}
_MODULES = {"checkpoint": "vqvae.core.checkpoint", "inference": "vqvae.image.inference"}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    raise AttributeError(f"module 'vqvae' has no attribute {name!r}")


__all__ = [*_LAZY, *_MODULES]
