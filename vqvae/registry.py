"""Short model names (``arch``) -> model class, config class and training task; the one factory.

A run directory stores its arch and its model config, so any command rebuilds
the model from the run alone: ``create_model(arch, config)`` (CompressAI /
timm style). Families register their archs themselves, each in its
``tasks`` module (``register(Arch(...))`` beside the Task it trains with).

Nothing here imports a family. :data:`INDEX` says which module registers each
arch, and a lookup imports that module only, on first use: loading a codec
imports the image tokenizer and the transformer prior, never audio or
text-to-image code, and ``vqvae --help`` imports no model at all.
tests/test_architecture.py checks that :data:`INDEX` and the registrations agree.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from vqvae.core.errors import ConfigError

# arch -> the module whose import registers it (the family's tasks module)
INDEX = {
    "vqvae": "vqvae.image.tasks",
    "dvae": "vqvae.image.tasks",
    "classifier": "vqvae.scoring.tasks",
    "pixelcnn": "vqvae.priors.tasks",
    "transformer": "vqvae.priors.tasks",
    "audio-vqvae": "vqvae.audio.tasks",
    "dalle": "vqvae.text2image.tasks",
    "clip": "vqvae.text2image.tasks",
    "scene-reader": "vqvae.text2image.tasks",
    "vae": "vqvae.baselines.tasks",
    "vimco": "vqvae.baselines.tasks",
    "vq": "vqvae.baselines.tasks",
    "stage2": "vqvae.world.tasks",
    "probe": "vqvae.world.tasks",
    "video": "vqvae.world.tasks",
}

KINDS = ("tokenizer", "prior", "classifier", "text2image", "baseline", "world")


@dataclass(frozen=True)
class Arch:
    """One registered model.

    name: the arch stored in run directories. model: the ``nn.Module`` class, built from its config
    dataclass (``model.config_cls``). task: the :class:`vqvae.core.task.Task` subclass that trains and
    evaluates it. kind: ``tokenizer`` (turns data into codes), ``prior``, ``classifier``, ``text2image`` or
    ``baseline`` (a latent-variable model judged by its bound: the paper's VAE and VIMCO).
    trained_by: the command that trains it, when that is not ``vqvae train`` (said when ``vqvae train``
    is given its preset). reads_reconstructions: it may train on a tokenizer's reconstructions too
    (``data.reconstructions_from``). code_recipe: for a model trained on a tokenizer's codes by
    ``vqvae train --tokenizer RUN --config PRESET``, its :class:`vqvae.core.runs.Recipe` class, built as
    ``code_recipe(run_args, tokenizer, config)``. Kind ``world``: the first-person world models (the second stage).
    """

    name: str
    model: type
    task: type
    kind: str
    trained_by: str = "vqvae train"
    reads_reconstructions: bool = False
    code_recipe: type | None = None

    @property
    def config_cls(self) -> type:
        return self.model.config_cls


_ARCHS: dict[str, Arch] = {}


def register(arch: Arch) -> Arch:
    """Called by a family's tasks module for each arch it defines."""
    if arch.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {arch.kind!r}")
    if INDEX.get(arch.name) is None:
        raise ValueError(f"arch {arch.name!r} is not in vqvae.registry.INDEX: add it there, naming the module that registers it")
    _ARCHS[arch.name] = arch
    return arch


def get(name: str) -> Arch:
    """The registered arch ``name`` (importing the module that registers it), or a one-line error listing the known ones."""
    if name not in _ARCHS:
        if name not in INDEX:
            raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(INDEX))}")
        importlib.import_module(INDEX[name])
    return _ARCHS[name]


def config_class(name: str) -> type:
    return get(name).config_cls


def create_model(name: str, config):
    """The one factory: a model of arch ``name`` built from its config dataclass (a config whose sizes cannot be
    allocated is a one-line :class:`ConfigError`, not a traceback from deep inside torch)."""
    arch = get(name)
    try:
        return arch.model(config)
    except (MemoryError, OverflowError) as e:
        raise ConfigError(f"a {name} model of this config cannot be built ({type(e).__name__}): are its sizes sensible?") from None
    except (RuntimeError, TypeError) as e:  # torch's allocator and size parsing, only: anything else is a bug to see
        if "can't allocate memory" in str(e) or "Overflow when unpacking" in str(e):
            raise ConfigError(f"a {name} model of this config cannot be built ({str(e).splitlines()[0][:120]}): are its sizes "
                              "sensible?") from None
        raise


def task_for(name: str):
    """A fresh instance of the task that trains and evaluates arch ``name``."""
    return get(name).task()


def is_kind(name: str, kind: str) -> bool:
    return get(name).kind == kind


def names(kind: str | None = None) -> list[str]:
    """Every known arch (of one kind), importing the families that define them."""
    return sorted(n for n in INDEX if kind is None or get(n).kind == kind)
